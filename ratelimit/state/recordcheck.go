package state

import "time"

// CheckRecord refuses, with [ErrRecordTooLarge], a record's key over [MaxRecordKey],
// value over [MaxRecordValue] or ttl that is not positive: what every store checks
// before Create and before a Swap that stores a value.
func CheckRecord(key string, val []byte, ttl time.Duration) error {
	if len(key) > MaxRecordKey || len(val) > MaxRecordValue || ttl <= 0 {
		return ErrRecordTooLarge
	}
	return nil
}

// CheckSwap is CheckRecord for Swap: old is bounded as a value, and a nil val (a
// delete) needs no ttl.
func CheckSwap(key string, old, val []byte, ttl time.Duration) error {
	if len(old) > MaxRecordValue {
		return ErrRecordTooLarge
	}
	if val == nil {
		return CheckRecordKey(key)
	}
	return CheckRecord(key, val, ttl)
}

// CheckRecordKey refuses a key over [MaxRecordKey] with [ErrRecordTooLarge].
func CheckRecordKey(key string) error {
	if len(key) > MaxRecordKey {
		return ErrRecordTooLarge
	}
	return nil
}
