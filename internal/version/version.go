// Package version holds askr's version string, set at build time with
// -ldflags "-X github.com/askr-php/askr/internal/version.Version=…".
package version

// Version is askr's version.
var Version = "0.1.0-dev"
