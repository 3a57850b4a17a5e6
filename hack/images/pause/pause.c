/*
 * pause: the process that holds a pod sandbox's namespaces open.
 *
 * It sleeps forever, reaps any zombie re-parented to it (it is PID 1 of the
 * pod when the pod shares its PID namespace), and exits 0 on SIGINT/SIGTERM
 * so a sandbox stop is quick and clean, like the upstream pause container.
 * Built with `gcc -static -Os` into the pause image by hack/lib/images.sh.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAUSE_VERSION "ferrokube-pause-1.0"

static void on_terminate(int signo) {
  (void)signo;
  _exit(0);
}

/* Reap every exited child; several SIGCHLDs can collapse into one. */
static void on_child(int signo) {
  int saved_errno = errno;
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
  errno = saved_errno;
}

static int install(int signo, void (*handler)(int)) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = (signo == SIGCHLD) ? (SA_NOCLDSTOP | SA_RESTART) : 0;
  return sigaction(signo, &sa, NULL);
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "-v") == 0) {
    printf("pause.c %s\n", PAUSE_VERSION);
    return 0;
  }
  if (getpid() != 1) {
    /* Not fatal: upstream only warns too (useful when run by hand). */
    fprintf(stderr, "Warning: pause should be the first process\n");
  }
  if (install(SIGINT, on_terminate) < 0 || install(SIGTERM, on_terminate) < 0) {
    perror("sigaction(SIGINT/SIGTERM)");
    return 1;
  }
  if (install(SIGCHLD, on_child) < 0) {
    perror("sigaction(SIGCHLD)");
    return 2;
  }
  for (;;) {
    pause();
  }
  fprintf(stderr, "Error: infinite loop terminated\n");
  return 42;
}
