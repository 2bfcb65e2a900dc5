package decode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sinkworker/sinkworker/sink/decode/format"
)

// RegistryConfig is how to reach a Confluent-API schema registry:
// SCHEMA_REGISTRY_URL and its credentials.
type RegistryConfig struct {
	URL                string
	Username, Password string      // basic auth when Username is set
	TLS                *tls.Config // nil: the system's roots (SCHEMA_REGISTRY_TLS_CA_FILE adds one)
	// Timeout bounds one request; 0 means 10 s.
	Timeout time.Duration
}

// Registry fetches schemas by id and keeps each compiled decoder for as
// long as the process runs: a schema id never changes meaning, so records
// whose schemas are known keep flowing through a registry outage. Safe for
// concurrent use; concurrent requests for one id share one fetch.
type Registry struct {
	client *sr.Client

	mu      sync.Mutex
	entries map[registryKey]*registryEntry
}

type registryKey struct {
	id     int
	format Format
}

// registryEntry is one id's decoder, or the schema problem that stops it,
// once done is closed.
type registryEntry struct {
	done chan struct{}
	dec  format.Decoder
	err  error     // a *schemaError, or a transient error (the entry is then dropped)
	at   time.Time // when a schema problem was found: asked again after unknownRetry
}

// unknownRetry is how long an unknown schema id stays unknown before the
// registry is asked again (a record may reach us before a replica of the
// registry has the schema its producer registered).
const unknownRetry = 30 * time.Second

// maxReferenceDepth bounds reference chains (and cycles).
const maxReferenceDepth = 32

// NewRegistry returns a Registry of c. It does not contact the registry.
func NewRegistry(c RegistryConfig) (*Registry, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = c.TLS
	opts := []sr.ClientOpt{
		sr.URLs(c.URL),
		sr.HTTPClient(&http.Client{Timeout: timeout, Transport: transport}),
		sr.UserAgent("sinkworker"),
	}
	if c.Username != "" {
		opts = append(opts, sr.BasicAuth(c.Username, c.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("SCHEMA_REGISTRY_URL: %w", err)
	}
	return &Registry{client: cl, entries: map[registryKey]*registryEntry{}}, nil
}

// schemaError is a record whose schema cannot be had or used: dead-lettered
// with ClassSchema.
type schemaError struct{ msg string }

func (e *schemaError) Error() string { return e.msg }

// RegistryError is a registry that could not answer (unreachable, 5xx, a
// refused login): transient, the batch is retried and nothing is
// dead-lettered. Its text never holds the credentials.
type RegistryError struct {
	ID  int
	Err error
}

func (e *RegistryError) Error() string {
	if e.ID == 0 {
		return fmt.Sprintf("schema registry: %v", e.Err)
	}
	return fmt.Sprintf("schema registry: schema id %d: %v", e.ID, e.Err)
}

func (e *RegistryError) Unwrap() error { return e.Err }

// decoder returns the decoder of schema id for f, fetching and compiling
// it on first use. The error is a *schemaError (the record's problem) or
// a *RegistryError (the registry's).
func (r *Registry) decoder(ctx context.Context, id int, f Format) (format.Decoder, error) {
	key := registryKey{id, f}
	r.mu.Lock()
	e, ok := r.entries[key]
	if ok {
		select {
		case <-e.done:
			if e.err != nil && time.Since(e.at) > unknownRetry {
				ok = false
			}
		default:
		}
	}
	if !ok {
		e = &registryEntry{done: make(chan struct{})}
		r.entries[key] = e
		r.mu.Unlock()
		e.dec, e.err = r.compile(ctx, id, f)
		e.at = time.Now()
		var se *schemaError
		if e.err != nil && !errors.As(e.err, &se) {
			r.mu.Lock()
			delete(r.entries, key) // the registry's problem: ask again next time
			r.mu.Unlock()
		}
		close(e.done)
		return e.dec, e.err
	}
	r.mu.Unlock()
	select {
	case <-e.done:
		return e.dec, e.err
	case <-ctx.Done():
		return nil, &RegistryError{ID: id, Err: ctx.Err()}
	}
}

// compile fetches schema id with its references and compiles it for f.
func (r *Registry) compile(ctx context.Context, id int, f Format) (format.Decoder, error) {
	s, err := r.client.SchemaByID(ctx, id)
	if err != nil {
		return nil, r.fetchError(id, err)
	}
	if want := f.schemaType(); s.Type != want {
		return nil, &schemaError{fmt.Sprintf("schema id %d is %s, not %s as SINK_*_FORMAT=%s says", id, s.Type, want, f)}
	}
	refs, err := r.references(ctx, id, s.References, 0)
	if err != nil {
		return nil, err
	}
	var dec format.Decoder
	schema := format.Schema{Text: s.Schema, References: refs}
	switch f {
	case FormatAvro:
		dec, err = format.CompileAvro(schema)
	case FormatProtobuf:
		dec, err = format.CompileProtobuf(schema)
	case FormatJSONSchema:
		dec, err = format.CompileJSONSchema(schema)
	default:
		err = fmt.Errorf("format %s has no registry schemas", f)
	}
	if err != nil {
		return nil, &schemaError{fmt.Sprintf("schema id %d does not compile: %v", id, err)}
	}
	return dec, nil
}

// references fetches refs (by subject and version), each with its own.
func (r *Registry) references(ctx context.Context, id int, refs []sr.SchemaReference, depth int) (map[string]format.Schema, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	if depth >= maxReferenceDepth {
		return nil, &schemaError{fmt.Sprintf("schema id %d: references nest deeper than %d (a cycle?)", id, maxReferenceDepth)}
	}
	out := make(map[string]format.Schema, len(refs))
	for _, ref := range refs {
		s, err := r.client.SchemaByVersion(ctx, ref.Subject, ref.Version)
		if err != nil {
			return nil, r.fetchError(id, fmt.Errorf("reference %s (subject %s version %d): %w", ref.Name, ref.Subject, ref.Version, err))
		}
		sub, err := r.references(ctx, id, s.References, depth+1)
		if err != nil {
			return nil, err
		}
		out[ref.Name] = format.Schema{Text: s.Schema.Schema, References: sub}
	}
	return out, nil
}

// ErrRegistryRefused marks a registry that refused the credentials
// (HTTP 401 or 403): a bad setting, not an outage.
var ErrRegistryRefused = errors.New("the schema registry refused the credentials")

// Probe asks the registry for its subjects, to find a bad URL or bad
// credentials at start-up: ErrRegistryRefused for HTTP 401 and 403, a
// *RegistryError when it does not answer (it may come up later).
func (r *Registry) Probe(ctx context.Context) error {
	_, err := r.client.Subjects(ctx)
	var re *sr.ResponseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w (HTTP %d)", ErrRegistryRefused, re.StatusCode)
	}
	return &RegistryError{Err: err}
}

// fetchError sorts a failed request: a schema or reference the registry
// does not have (404) is the record's problem; anything else is the
// registry's.
func (r *Registry) fetchError(id int, err error) error {
	var re *sr.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusNotFound {
		return &schemaError{fmt.Sprintf("schema id %d: not in the registry (unknown or deleted): %s", id, re.Message)}
	}
	return &RegistryError{ID: id, Err: err}
}
