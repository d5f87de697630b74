/*
 * bench stamp: prints "BN7 <what> <CLOCK_MONOTONIC ns>" on stdout.
 *
 *   stamp exec [NAME=VALUE...] PROG [ARGS...]
 *                              print "exec", set the variables, then execve PROG
 *                              in place (same PID); the variables reach only PROG
 *   stamp (any other argv)     the real init of the bench root: print "init"
 *                              and wait until the namespace is torn down
 *
 * Static, no dependencies: it runs as PID 1 of a PID namespace, before and
 * after switch_root. PID 1 of a namespace may exit (only the namespace dies),
 * but the bench inspects the network first, so "init" waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void stamp(const char *what)
{
	struct timespec ts;
	char line[96];
	int n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	n = snprintf(line, sizeof(line), "BN7 %s %lld\n", what,
		     (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
	(void)!write(1, line, (size_t)n);
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "exec") == 0) {
		int i = 2;

		stamp("exec");
		while (i < argc - 1 && argv[i][0] != '/' && strchr(argv[i], '='))
			putenv(argv[i++]);
		execve(argv[i], argv + i, environ);
		perror("bn7 stamp: execve");
		return 127;
	}
	stamp("init");
	for (;;)
		pause();
}
