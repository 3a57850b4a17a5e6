//go:build tools

// Package metricsserver pins metrics-server for `go mod tidy`.
package metricsserver

import _ "sigs.k8s.io/metrics-server/cmd/metrics-server"
