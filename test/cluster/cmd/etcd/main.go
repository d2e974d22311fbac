// Command etcd is etcd's own server entry point, built from the version that the pinned
// Kubernetes release requires (Debian's etcd is too old for current API servers).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
