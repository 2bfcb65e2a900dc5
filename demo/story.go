package demo

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
)

// story generates the user service's events: a user is created
// (user-created), earns and spends points (points-changed), and now and
// then deletes the account (a tombstone); a deleted user may sign up again.
// Keys are user ids, so one user's events stay in order on one partition.
// Its codec writes them in the run's format. It also keeps the model: what
// the table must hold once everything is sunk.
type story struct {
	rng       *rand.Rand
	codec     codec
	users     []account
	deletePct float64
	model     map[string][]byte // the row's key as text -> the row as JSON; deleted users absent
	creates   int
	changes   int
	deletes   int
}

type account struct {
	exists   bool
	points   int
	signedUp time.Time
}

// event is one event of the story with the user's state after it.
type event struct {
	id       int
	kind     string // eventCreated or eventChanged; "" for a delete
	name     string
	points   int // the balance after the event
	delta    int // the change of a points-changed event
	signedUp time.Time
	at       time.Time // when it happened, UTC, to the millisecond
}

const (
	eventCreated = "user-created"
	eventChanged = "points-changed"
)

// key is the user id as the json format's record key.
func (e *event) key() string { return "u-" + strconv.Itoa(e.id) }

var firstNames = []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Leslie"}

// newStory sizes the user base at one user per 20 events (at least 10), so
// most users get several events.
func newStory(events int, deletePct float64, seed uint64, c codec) *story {
	return &story{
		rng:       rand.New(rand.NewPCG(seed, seed^0x5eed)),
		codec:     c,
		users:     make([]account, max(10, events/20)),
		deletePct: deletePct,
		model:     map[string][]byte{},
	}
}

// next is the next event as a record (its value nil for a delete).
func (s *story) next() (record, error) {
	id := s.rng.IntN(len(s.users))
	u := &s.users[id]
	now := time.Now().UTC().Truncate(time.Millisecond)
	ev := event{id: id, at: now}
	switch {
	case !u.exists:
		*u = account{exists: true, signedUp: now.Truncate(24 * time.Hour)}
		s.creates++
		ev.kind = eventCreated
	case s.rng.Float64()*100 < s.deletePct:
		*u = account{}
		s.deletes++
	default:
		ev.delta = s.rng.IntN(120) - 20
		u.points += ev.delta
		s.changes++
		ev.kind = eventChanged
	}
	if ev.kind != "" {
		ev.name, ev.points, ev.signedUp = fmt.Sprintf("%s %d", firstNames[id%len(firstNames)], id), u.points, u.signedUp
	}
	rec, err := s.codec.encode(&ev)
	if err != nil {
		return record{}, fmt.Errorf("encode event of user %d: %w", id, err)
	}
	if rec.value == nil {
		delete(s.model, rec.modelKey)
	} else {
		s.model[rec.modelKey] = rec.row
	}
	return rec, nil
}

// bad is bad record number i (0-based) of the codec's kinds, made from a
// points-changed event of a random existing or former user that the story
// does not apply.
func (s *story) bad(i int) (kind string, key, value []byte, err error) {
	kinds := s.codec.badKinds()
	k := kinds[i%len(kinds)]
	id := s.rng.IntN(len(s.users))
	now := time.Now().UTC().Truncate(time.Millisecond)
	ev := event{id: id, kind: eventChanged, name: fmt.Sprintf("%s %d", firstNames[id%len(firstNames)], id),
		points: 1, delta: 1, signedUp: now.Truncate(24 * time.Hour), at: now}
	rec, err := s.codec.encode(&ev)
	if err != nil {
		return "", nil, nil, fmt.Errorf("encode bad record %d: %w", i, err)
	}
	key, value = k.make(rec)
	return k.name, key, value, nil
}
