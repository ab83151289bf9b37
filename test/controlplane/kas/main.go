// Command kube-apiserver is the upstream API server, built from k8s.io/kubernetes
// so tests run against the real thing without Docker or kind.
package main

import (
	"os"
	_ "time/tzdata" // as upstream: CronJob time zones without a system zoneinfo

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"

	"recontext.dev/test/controlplane/exitwithparent"
)

func main() {
	exitwithparent.Watch()
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
