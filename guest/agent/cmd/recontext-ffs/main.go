// recontext-ffs: the guest agent of recontext — the read-only union of the VM's context layers
// with hooks, a status file and the CD-ROM device watcher, as one static binary.
//
//	recontext-ffs mount MOUNTPOINT [--layer NAME=DIR:PRIORITY]... [--control SOCKET] [--devices [HELPER]] [--media-dir DIR] [--config FILE]
//	recontext-ffs set MOUNTPOINT [--layer NAME=DIR:PRIORITY]...
//	recontext-ffs status MOUNTPOINT [--json]
package main

import (
	"os"

	"recontext.dev/guest/agent/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
