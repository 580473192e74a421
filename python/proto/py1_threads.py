"""Starts a thread when imported: the preload refuses it."""
import threading
import time

threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
