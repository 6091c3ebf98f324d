// Command zipgate is the mail gateway; see internal/cli.
package main

import (
	"os"

	"github.com/zipgate/zipgate/internal/cli"
)

func main() { os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr)) }
