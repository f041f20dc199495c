/*
 * askr: the part of the askr PHP runtime that PHP code cannot do itself.
 *
 * askrd's workers are php-cgi processes whose one long php-cgi request serves many HTTP requests
 * (internal/phpruntime/runtime.php). Three things PHP keeps per SAPI request are out of reach of
 * PHP code there; this extension gives the runtime a handle on each:
 *
 *   askr_ext_request_begin(array $uploaded_paths): void
 *       SG(rfc1867_uploaded_files), the table is_uploaded_file() and move_uploaded_file() check,
 *       is filled only when PHP parses a multipart body itself. This empties it (unlinking
 *       nothing: the files are askrd's) and registers the request's uploads. It also resets
 *       connection_aborted() for the new request.
 *   askr_ext_on_flush(?callable $callback): void
 *       flush() calls $callback() after doing what it always did, so the runtime can stream.
 *   askr_ext_abort(): void
 *       what PHP does when a write to the client fails: connection_aborted() becomes 1 and,
 *       unless ignore_user_abort is on, the script ends (shutdown functions still run).
 *   askr_ext_die_with(int $keeper): bool
 *       the parent-death rule a forked CoW worker needs and PHP code cannot set (prctl): the
 *       process is killed when its parent dies, unless it is then re-parented to $keeper (askrd,
 *       its subreaper, while it runs), and when $keeper dies after that.
 *   askr_ext_stdin_null(): bool
 *       makes fd 0, askrd's channel (in a CoW fork the template's), /dev/null: the runtime reads
 *       the channel through its own dup, and a command the app runs cannot take frames from it.
 *   askr_ext_version(): string
 *
 * The runtime calls them guarded by function_exists(): askr works without the extension, with
 * those three things degraded. Built against Debian's php8.2-dev (make ext, or the package).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "php.h"
#include "php_main.h"
#include "php_output.h"
#include "SAPI.h"
#include "ext/standard/info.h"

#include <errno.h>
#include <signal.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <unistd.h>

#define PHP_ASKR_VERSION "0.1.0"

ZEND_BEGIN_MODULE_GLOBALS(askr)
	zend_fcall_info flush_fci;       /* the askr_ext_on_flush() callable (size 0: none) */
	zend_fcall_info_cache flush_fcc; /* ... as resolved where it was registered */
	bool in_flush_cb;                /* it runs: a flush() inside it does not call it again */
	bool uploads_ours;               /* askr_ext_request_begin() ran: the upload table is askrd's */
ZEND_END_MODULE_GLOBALS(askr)

ZEND_DECLARE_MODULE_GLOBALS(askr)
#define ASKR_G(v) ZEND_MODULE_GLOBALS_ACCESSOR(askr, v)

/* PHP's own flush(), kept when MINIT puts askr_flush in its place. */
static zif_handler orig_flush;

/* The destructor main/rfc1867.c gives the upload table (its free_filename): every value is the
 * path as a zend_string the table owns. It does not unlink: askrd removes its files. */
static void askr_free_filename(zval *el)
{
	zend_string_release_ex((zend_string *) Z_PTR_P(el), 0);
}

PHP_FUNCTION(askr_ext_request_begin)
{
	HashTable *paths, *uploads;
	zval *p;

	ZEND_PARSE_PARAMETERS_START(1, 1)
		Z_PARAM_ARRAY_HT(paths)
	ZEND_PARSE_PARAMETERS_END();

	ZEND_HASH_FOREACH_VAL(paths, p) {
		ZVAL_DEREF(p);
		if (Z_TYPE_P(p) != IS_STRING) {
			zend_argument_type_error(1, "must contain only strings, %s given", zend_zval_type_name(p));
			RETURN_THROWS();
		}
	} ZEND_HASH_FOREACH_END();

	/* The table is request memory of the worker's one php-cgi request, so it lives across our
	 * requests: empty it rather than destroy_uploaded_files_hash(), which would unlink. */
	uploads = SG(rfc1867_uploaded_files);
	if (uploads) {
		zend_hash_clean(uploads);
	} else {
		/* Created as rfc1867_post_handler() creates it. */
		ALLOC_HASHTABLE(uploads);
		zend_hash_init(uploads, 8, NULL, askr_free_filename, 0);
		SG(rfc1867_uploaded_files) = uploads;
	}
	ASKR_G(uploads_ours) = true;

	/* Key and value are the path, as rfc1867.c adds them; move_uploaded_file() deletes the entry
	 * of a file it moved. */
	ZEND_HASH_FOREACH_VAL(paths, p) {
		zend_string *path;

		ZVAL_DEREF(p);
		path = zend_string_copy(Z_STR_P(p));
		if (!zend_hash_add_ptr(uploads, path, path)) {
			zend_string_release(path); /* listed twice */
		}
	} ZEND_HASH_FOREACH_END();

	/* A new client: undo what php_handle_aborted_connection() did for the previous one. */
	PG(connection_status) = PHP_CONNECTION_NORMAL;
	if (php_output_get_status() & PHP_OUTPUT_DISABLED) {
		php_output_set_status(php_output_get_status() & ~PHP_OUTPUT_DISABLED);
	}
}

/* Forgets the flush callable. */
static void askr_flush_cb_release(void)
{
	zend_fcall_info old = ASKR_G(flush_fci);

	ASKR_G(flush_fci).size = 0;
	if (old.size) {
		zval_ptr_dtor(&old.function_name); /* last: releasing a closure may run destructors */
	}
}

PHP_FUNCTION(askr_ext_on_flush)
{
	zend_fcall_info fci;
	zend_fcall_info_cache fcc;

	ZEND_PARSE_PARAMETERS_START(1, 1)
		Z_PARAM_FUNC_OR_NULL(fci, fcc)
	ZEND_PARSE_PARAMETERS_END();

	/* Kept as register_shutdown_function() keeps its callables: the fci with a reference to the
	 * callable (which keeps its object or closure alive) and the fcc resolved here, in the
	 * caller's scope. */
	askr_flush_cb_release();
	if (ZEND_FCI_INITIALIZED(fci)) {
		Z_TRY_ADDREF(fci.function_name);
		ASKR_G(flush_fcc) = fcc;
		ASKR_G(flush_fci) = fci;
	}
}

/* flush() once MINIT has installed it: PHP's flush(), then the askr_ext_on_flush() callable. */
static ZEND_NAMED_FUNCTION(askr_flush)
{
	zend_fcall_info fci;
	zend_fcall_info_cache fcc;
	zval retval;

	orig_flush(INTERNAL_FUNCTION_PARAM_PASSTHRU);
	if (!ASKR_G(flush_fci).size || ASKR_G(in_flush_cb) || EG(exception)) {
		return;
	}
	/* A copy with a reference of our own, so the callable survives replacing itself. An
	 * exception it throws is left pending and reaches flush()'s caller; a bailout (fatal error,
	 * askr_ext_abort()) passes through after the cleanup. */
	fci = ASKR_G(flush_fci);
	fcc = ASKR_G(flush_fcc);
	Z_TRY_ADDREF(fci.function_name);
	fci.retval = &retval;
	ZVAL_UNDEF(&retval);
	ASKR_G(in_flush_cb) = true;
	zend_try {
		zend_call_function(&fci, &fcc);
		zval_ptr_dtor(&retval);
	} zend_catch {
		ASKR_G(in_flush_cb) = false;
		zval_ptr_dtor(&fci.function_name);
		zend_bailout();
	} zend_end_try();
	ASKR_G(in_flush_cb) = false;
	zval_ptr_dtor(&fci.function_name);
}

PHP_FUNCTION(askr_ext_abort)
{
	ZEND_PARSE_PARAMETERS_NONE();
	/* What PHP does when a write to the client fails (main/main.c): PG(connection_status) =
	 * ABORTED, output disabled, and zend_bailout() unless ignore_user_abort is on. */
	php_handle_aborted_connection();
}

/* The parent-death signal of askr_ext_die_with(): a real-time signal nothing else in PHP uses,
 * handled here, so that a parent's death can spare the process. */
#define ASKR_PDEATH_SIGNAL (SIGRTMIN + 7)

/* The process askr_ext_die_with() may be re-parented to without dying (0: none yet). */
static volatile sig_atomic_t askr_keeper = 0;

/* Runs when the parent has died; by then the kernel has given the process its new parent. Only
 * async-signal-safe calls. */
static void askr_on_parent_death(int sig)
{
	(void) sig;
	if (askr_keeper == 0 || getppid() != (pid_t) askr_keeper) {
		kill(getpid(), SIGKILL);
	}
}

PHP_FUNCTION(askr_ext_die_with)
{
	zend_long keeper;
	struct sigaction sa;

	ZEND_PARSE_PARAMETERS_START(1, 1)
		Z_PARAM_LONG(keeper)
	ZEND_PARSE_PARAMETERS_END();

	if (keeper <= 1) {
		zend_argument_value_error(1, "must be a process id greater than 1");
		RETURN_THROWS();
	}
	askr_keeper = (sig_atomic_t) keeper;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = askr_on_parent_death;
	sa.sa_flags = SA_RESTART; /* the template's death interrupts nothing the worker does */
	sigemptyset(&sa.sa_mask);
	if (sigaction(ASKR_PDEATH_SIGNAL, &sa, NULL) != 0 || prctl(PR_SET_PDEATHSIG, ASKR_PDEATH_SIGNAL) != 0) {
		RETURN_FALSE;
	}
	/* The parent may have died before prctl(): then no signal comes. Re-parented to a keeper that
	 * is gone too, the process has nobody left to serve. */
	if (getppid() == (pid_t) keeper || kill((pid_t) keeper, 0) == 0 || errno != ESRCH) {
		RETURN_TRUE;
	}
	kill(getpid(), SIGKILL);
	RETURN_FALSE;
}

/* askr_ext_stdin_null(): makes fd 0 /dev/null. A worker's fd 0 is askrd's channel (a CoW fork's, the
 * template's); the runtime reads it through its own dup (php://stdin), so nothing is lost, and a
 * command the app runs (exec(), proc_open() without a spec for fd 0) can no longer read frames
 * meant for PHP. PHP code has no dup2(). */
PHP_FUNCTION(askr_ext_stdin_null)
{
	int fd;

	ZEND_PARSE_PARAMETERS_NONE();
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		RETURN_FALSE;
	}
	if (fd != 0 && dup2(fd, 0) < 0) { /* dup2 clears FD_CLOEXEC on fd 0 */
		close(fd);
		RETURN_FALSE;
	}
	if (fd != 0) {
		close(fd);
	}
	RETURN_TRUE;
}

PHP_FUNCTION(askr_ext_version)
{
	ZEND_PARSE_PARAMETERS_NONE();
	RETURN_STRING(PHP_ASKR_VERSION);
}

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_request_begin, 0, 1, IS_VOID, 0)
	ZEND_ARG_TYPE_INFO(0, uploaded_paths, IS_ARRAY, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_on_flush, 0, 1, IS_VOID, 0)
	ZEND_ARG_TYPE_INFO(0, callback, IS_CALLABLE, 1)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_abort, 0, 0, IS_VOID, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_stdin_null, 0, 0, _IS_BOOL, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_die_with, 0, 1, _IS_BOOL, 0)
	ZEND_ARG_TYPE_INFO(0, keeper, IS_LONG, 0)
ZEND_END_ARG_INFO()

ZEND_BEGIN_ARG_WITH_RETURN_TYPE_INFO_EX(arginfo_askr_ext_version, 0, 0, IS_STRING, 0)
ZEND_END_ARG_INFO()

static const zend_function_entry askr_functions[] = {
	PHP_FE(askr_ext_request_begin, arginfo_askr_ext_request_begin)
	PHP_FE(askr_ext_on_flush, arginfo_askr_ext_on_flush)
	PHP_FE(askr_ext_abort, arginfo_askr_ext_abort)
	PHP_FE(askr_ext_die_with, arginfo_askr_ext_die_with)
	PHP_FE(askr_ext_stdin_null, arginfo_askr_ext_stdin_null)
	PHP_FE(askr_ext_version, arginfo_askr_ext_version)
	PHP_FE_END
};

static PHP_GINIT_FUNCTION(askr)
{
#if defined(COMPILE_DL_ASKR) && defined(ZTS)
	ZEND_TSRMLS_CACHE_UPDATE();
#endif
	askr_globals->flush_fci.size = 0;
	askr_globals->in_flush_cb = false;
	askr_globals->uploads_ours = false;
}

/* Puts askr_flush in flush()'s place in the (persistent) function table; flush() is ext/standard's,
 * which is started before us (askr_deps). */
static PHP_MINIT_FUNCTION(askr)
{
	zend_function *f = zend_hash_str_find_ptr(CG(function_table), ZEND_STRL("flush"));

	if (f && f->type == ZEND_INTERNAL_FUNCTION) {
		orig_flush = f->internal_function.handler;
		f->internal_function.handler = askr_flush;
	}
	return SUCCESS;
}

static PHP_MSHUTDOWN_FUNCTION(askr)
{
	zend_function *f = zend_hash_str_find_ptr(CG(function_table), ZEND_STRL("flush"));

	if (f && orig_flush && f->type == ZEND_INTERNAL_FUNCTION) {
		f->internal_function.handler = orig_flush;
	}
	return SUCCESS;
}

/* Runs before sapi_deactivate(), which unlinks every file left in the upload table: the ones
 * registered by askr_ext_request_begin() are askrd's to remove, so they are dropped first. */
static PHP_RSHUTDOWN_FUNCTION(askr)
{
	askr_flush_cb_release();
	ASKR_G(in_flush_cb) = false;
	if (ASKR_G(uploads_ours) && SG(rfc1867_uploaded_files)) {
		zend_hash_clean(SG(rfc1867_uploaded_files));
	}
	ASKR_G(uploads_ours) = false;
	return SUCCESS;
}

static PHP_MINFO_FUNCTION(askr)
{
	php_info_print_table_start();
	php_info_print_table_row(2, "askr support", "enabled");
	php_info_print_table_row(2, "askr extension version", PHP_ASKR_VERSION);
	php_info_print_table_end();
}

static const zend_module_dep askr_deps[] = {
	ZEND_MOD_REQUIRED("standard")
	ZEND_MOD_END
};

zend_module_entry askr_module_entry = {
	STANDARD_MODULE_HEADER_EX, NULL,
	askr_deps,
	"askr",
	askr_functions,
	PHP_MINIT(askr),
	PHP_MSHUTDOWN(askr),
	NULL, /* RINIT */
	PHP_RSHUTDOWN(askr),
	PHP_MINFO(askr),
	PHP_ASKR_VERSION,
	PHP_MODULE_GLOBALS(askr),
	PHP_GINIT(askr),
	NULL, /* GSHUTDOWN */
	NULL, /* post deactivate */
	STANDARD_MODULE_PROPERTIES_EX
};

#ifdef COMPILE_DL_ASKR
#ifdef ZTS
ZEND_TSRMLS_CACHE_DEFINE()
#endif
ZEND_GET_MODULE(askr)
#endif
