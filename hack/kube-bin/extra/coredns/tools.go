//go:build tools

// Package coredns pins the CoreDNS server for `go mod tidy`.
package coredns

import _ "github.com/coredns/coredns"
