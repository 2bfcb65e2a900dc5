package testbed

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCommand(t *testing.T) {
	assert.Equal(t, "go run ./bench/suite", Command("./bench/suite", nil))
	assert.Equal(t, `go run ./bench/suite -records 20000 -env 'A=b c' 'it'\''s'`,
		Command("./bench/suite", []string{"-records", "20000", "-env", "A=b c", "it's"}))
}

func TestHumanKB(t *testing.T) {
	assert.Equal(t, "23.5 GiB", humanKB("24641536 kB"))
	assert.Equal(t, "?", humanKB("?"))
}
