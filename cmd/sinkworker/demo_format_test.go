//go:build !nodemo

package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestDemoFormatFlag checks -format's help and its bounds; the demo runs
// with each format in package demo's tests.
func TestDemoFormatFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, runDemo([]string{"-h"}, &stdout, &stderr))
	for _, f := range []string{"-format", "avro", "protobuf", "srfake"} {
		assert.Contains(t, stderr.String(), f)
	}

	stderr.Reset()
	assert.Equal(t, 2, runDemo([]string{"-format", "xml"}, &stdout, &stderr), "an unknown format is a bad flag")
	assert.Contains(t, stderr.String(), `-format: must be json, avro or protobuf, got "xml"`)
}
