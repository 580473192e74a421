/* mpspawn.c: main() of the mpspawn command; everything else is in cli.c. */
#include "cli.h"

int main(int argc, char **argv) {
        return mps__cli_main(argc, argv);
}
