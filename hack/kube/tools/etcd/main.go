// Command etcd is etcd v3.7.3's server (go.etcd.io/etcd/server/v3/etcdmain),
// built from its module for the test cluster kit. It takes etcd's own flags.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
