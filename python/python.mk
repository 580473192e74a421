# The Python package (python/mpspawn, stdlib only: ctypes over
# libmpspawn.so.0) and its pytest suite. Included by the top Makefile.

# check-python: pytest with every distinct python3 we are asked to support,
# the one on PATH and Debian's /usr/bin/python3 (the same interpreter on a
# fresh Debian machine: it then runs once). pytest comes from Debian's
# python3-pytest, which only Debian's interpreter sees; another python3 on
# PATH (pyenv, a venv) borrows that pure-Python pytest through PYTHONPATH
# when it has none of its own. The package itself is always the tree's.
PYTHON_TEST_INTERPRETERS = $(shell command -v python3) /usr/bin/python3
PYTEST_FALLBACK_PATH     = /usr/lib/python3/dist-packages

.PHONY: check-python
check-python: $(BUILD)/libmpspawn.so.$(VERSION) $(BUILD)/mpforkserver $(BUILD)/mpspawn_python.so \
              $(BUILD)/tests/preload_table.so
	@seen=""; \
	for py in $(PYTHON_TEST_INTERPRETERS); do \
	  real=$$(readlink -f "$$py") || continue; \
	  case " $$seen " in *" $$real "*) continue;; esac; seen="$$seen $$real"; \
	  path=$(CURDIR)/python; \
	  "$$py" -c 'import pytest' 2>/dev/null || path="$$path:$(PYTEST_FALLBACK_PATH)"; \
	  echo "check-python: $$py ($$("$$py" -c 'import sys; print(sys.version.split()[0])'))"; \
	  PYTHONPATH="$$path" "$$py" -m pytest -q -p no:cacheprovider python/tests \
	    || exit 1; \
	done
