/*
 * /bin/sh of the local busybox test images.
 *
 * The e2e busybox image (busybox 1.37) keeps environment variables whose
 * names are not shell identifiers, such as "data-1" from a ConfigMap, when
 * it runs a command, and prints ash's own error messages ("/bin/sh: can't
 * create /file: Read-only file system"); conformance specs check both.
 * Debian's busybox (1.35) ash drops such variables, and bash keeps them but
 * words its errors differently. So: ash, as in the real image, unless the
 * environment holds a name ash would drop; then bash, which passes it on.
 * argv is handed over unchanged, so messages carry the name sh was run by.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* 1 when NAME (up to '=') is a valid shell identifier: [A-Za-z_][A-Za-z0-9_]*. */
static int is_identifier(const char *entry) {
  const char *p = entry;
  if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
    return 0;
  for (p++; *p && *p != '='; p++) {
    if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
          (*p >= '0' && *p <= '9') || *p == '_'))
      return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  (void)argc;
  for (char **e = environ; *e; e++) {
    if (strchr(*e, '=') && !is_identifier(*e)) {
      execv("/bin/bash", argv);
      perror("/bin/bash");
      return 127;
    }
  }
  /* busybox picks the applet from argv[0]'s base name; make sure it is sh. */
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (strcmp(base, "sh") != 0)
    argv[0] = "sh";
  execv("/bin/busybox", argv);
  perror("/bin/busybox");
  return 127;
}
