dnl askr: the optional PHP extension of the askr application server (see askr.c).
PHP_ARG_ENABLE([askr], [whether to enable askr],
  [AS_HELP_STRING([--enable-askr], [Enable askr, the askr application server's helper extension])],
  [yes])

if test "$PHP_ASKR" != "no"; then
  PHP_NEW_EXTENSION(askr, askr.c, $ext_shared)
fi
