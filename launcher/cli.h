/* cli.h: the mpspawn command as a function, so tests can drive it. */
#ifndef MPS_CLI_H
#define MPS_CLI_H

/* Runs `mpspawn argv...` and returns its exit status. */
int mps__cli_main(int argc, char **argv);

#endif /* MPS_CLI_H */
