package redisstore

// Credits (state.Credits) and license bindings (state.Bindings).

import (
	"context"
	"fmt"
	"github.com/gatehouse/gatehouse/ratelimit/state"
	"strconv"
)

// Adjust implements [Store].
func (s *Store) Adjust(ctx context.Context, key state.Key, delta int64) (int64, error) {
	var v int64
	err := s.call(ctx, "INCRBY", func(r redisCall) error {
		var err error
		v, err = r.c.Do(r.ctx, r.c.B().Incrby().Key(key.Render(s.prefix, s.cluster)).Increment(delta).Build()).AsInt64()
		return err
	})
	if err == nil {
		s.forgetOver([]state.Op{{Key: key, Cost: -1}}) // a top-up ends the mark as a refund does
	}
	return v, err
}

func (s *Store) bindKey(key string) string {
	if s.cluster {
		return s.prefix + "bind:{" + state.KeyEscaper.Replace(key) + "}"
	}
	return s.prefix + "bind:" + state.KeyEscaper.Replace(key)
}

// Bind implements [Store].
func (s *Store) Bind(ctx context.Context, key, member string, maxMembers int) (bool, int, error) {
	var res []int64
	err := s.call(ctx, "EVALSHA", func(r redisCall) error {
		var err error
		res, err = bindScript.Exec(r.ctx, r.c, []string{s.bindKey(key)}, []string{member, strconv.Itoa(maxMembers)}).AsIntSlice()
		return err
	})
	if err != nil {
		return false, 0, err
	}
	if len(res) != 2 {
		return false, 0, fmt.Errorf("%w: bind script returned %d values", state.ErrUnavailable, len(res))
	}
	return res[0] == 1, int(res[1]), nil
}

// ResetBindings implements [Store].
func (s *Store) ResetBindings(ctx context.Context, key string) error {
	return s.call(ctx, "DEL", func(r redisCall) error {
		return r.c.Do(r.ctx, r.c.B().Del().Key(s.bindKey(key)).Build()).Error()
	})
}
