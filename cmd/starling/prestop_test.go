package main

import "testing"

func TestPodOrdinal_Cases(t *testing.T) {
	for _, tc := range []struct {
		pod  string
		want int
		ok   bool
	}{
		{"starling-0", 0, true},
		{"my-broker-12", 12, true},
		{"starling", 0, false},
		{"", 0, false},
		{"starling-x", 0, false},
	} {
		got, err := podOrdinal(tc.pod)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("podOrdinal(%q) = %d, %v; want %d, ok %v", tc.pod, got, err, tc.want, tc.ok)
		}
	}
}

func TestReplicasOf_DefaultsToOne(t *testing.T) {
	for _, tc := range []struct {
		body string
		want int
	}{
		{`{"spec":{"replicas":3}}`, 3},
		{`{"spec":{"replicas":0}}`, 0},
		{`{"spec":{}}`, 1},
	} {
		got, err := replicasOf([]byte(tc.body))
		if err != nil || got != tc.want {
			t.Errorf("replicasOf(%s) = %d, %v; want %d", tc.body, got, err, tc.want)
		}
	}
	if _, err := replicasOf([]byte("not json")); err == nil {
		t.Error("replicasOf accepted a body that is not JSON")
	}
}
