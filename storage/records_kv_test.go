package storage

import (
	"errors"
	"testing"
)

func TestRecords_PutGetDeleteAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, testConfig(dir))
	b := s.NewBatch()
	b.PutRecord(RecordUser, "alice", []byte("a1"))
	b.PutRecord(RecordUser, "bob", []byte("b1"))
	b.PutRecord(RecordGroup, "fleet", []byte("g1"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, testConfig(dir))
	if v, err := s.Record(RecordUser, "alice"); err != nil || string(v) != "a1" {
		t.Fatalf("Record(alice) = %q, %v", v, err)
	}
	var users []string
	if err := s.Records(RecordUser, func(name string, _ []byte) error { users = append(users, name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0] != "alice" || users[1] != "bob" {
		t.Fatalf("users %v, want [alice bob] (groups must not leak in)", users)
	}

	b = s.NewBatch()
	b.DeleteRecord(RecordUser, "alice")
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := s.Record(RecordUser, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted record: err %v, want ErrNotFound", err)
	}
}
