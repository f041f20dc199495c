// Command askrd is the askr PHP application server. Installed also as "askr", it behaves the same
// under either name.
package main

import (
	"os"

	"github.com/askr-php/askr/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
