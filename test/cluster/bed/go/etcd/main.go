// Command etcd is the upstream etcd server (etcd's own entry point), for the registry.k8s.io/etcd
// image the local kind cluster's kubeadm runs as a static pod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
