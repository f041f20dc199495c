// Package integration holds askr's end-to-end tests: they build the real askrd, start it on real
// php-cgi workers and real sockets, and drive it over HTTP. It has no non-test code.
package integration
