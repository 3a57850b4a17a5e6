//go:build tools

// Package etcd pins the etcd server and etcdctl for `go mod tidy`.
package etcd

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
