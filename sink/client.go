package sink

import "github.com/twmb/franz-go/pkg/kgo"

// ClientOpts are the options of a plain Kafka client for c: the seed
// brokers and the SASL and TLS settings, with no group and no consuming.
// The operator commands (packages audit and redrive) build their clients
// from them. Errors wrap ErrConfig and name files, never secrets.
func (c Config) ClientOpts() ([]kgo.Opt, error) {
	sec, err := securityOpts(c)
	if err != nil {
		return nil, err
	}
	return append(sec, kgo.SeedBrokers(c.Brokers...)), nil
}
