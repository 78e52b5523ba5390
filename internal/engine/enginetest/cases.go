package enginetest

import "testing"

// runCases is replaced by the suite's cases.
func runCases(t *testing.T, h Harness) {}
