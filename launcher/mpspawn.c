/* SPDX-License-Identifier: MIT */
/* mpspawn.c: main() of the mpspawn command; cli.h says where the rest is. */
#include "cli.h"

int main(int argc, char **argv) {
        return mps__cli_main(argc, argv);
}
