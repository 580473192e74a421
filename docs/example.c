/* example.c: launch, join, and terminate through libmpspawn.
 * Build: cc example.c $(pkg-config --cflags --libs mpspawn) */
#include <mpspawn.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
        mps_client *client;
        mps_spec *spec;
        mps_process *job, *sleeper;
        char *why = NULL;

        /* NULL: $MPSPAWN_SOCKET, the system socket, else a private server. */
        if (mps_client_open(NULL, &client, &why) < 0) {
                fprintf(stderr, "no forkserver: %s\n", why);
                free(why);
                return 1;
        }

        const char *argv[] = {"sh", "-c", "echo hello from job $$; exit 3", NULL};
        mps_spec_new(&spec);
        mps_spec_set_exec(spec, "sh", argv);
        mps_process_new(client, spec, &job);
        if (mps_start(job) < 0) {
                fprintf(stderr, "start: %s\n", mps_client_error(client));
                return 1;
        }
        mps_join(job, -1);
        printf("job %d exited with %d\n", (int)mps_pid(job), mps_exitcode(job));

        const char *sleep_argv[] = {"sleep", "60", NULL};
        mps_spec_set_exec(spec, "sleep", sleep_argv);
        mps_process_new(client, spec, &sleeper);
        mps_start(sleeper);
        mps_terminate(sleeper);
        /* The sentinel is a pidfd: poll it alongside anything else. */
        struct pollfd pfd = {.fd = mps_sentinel(sleeper), .events = POLLIN};
        poll(&pfd, 1, -1);
        printf("sleeper ended with %d (-15: SIGTERM)\n", mps_exitcode(sleeper));

        mps_process_close(job);
        mps_process_close(sleeper);
        mps_spec_free(spec);
        mps_client_close(client);
        return 0;
}
