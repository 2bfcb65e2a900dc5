package testbed

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCommand(t *testing.T) {
	assert.Equal(t, "go run ./bench/drain", Command("./bench/drain", nil))
	assert.Equal(t, `go run ./bench/drain -records 20000 -env 'A=b c' 'it'\''s'`,
		Command("./bench/drain", []string{"-records", "20000", "-env", "A=b c", "it's"}))
}

func TestHumanKB(t *testing.T) {
	assert.Equal(t, "23.5 GiB", humanKB("24641536 kB"))
	assert.Equal(t, "?", humanKB("?"))
}
