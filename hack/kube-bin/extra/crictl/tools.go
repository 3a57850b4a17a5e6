//go:build tools

// Package crictl pins crictl for `go mod tidy`.
package crictl

import _ "sigs.k8s.io/cri-tools/cmd/crictl"
