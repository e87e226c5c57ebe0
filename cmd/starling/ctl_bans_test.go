package main

import (
	"strings"
	"testing"
)

func TestCtl_BanAddListRemove(t *testing.T) {
	f := startAdminFixture(t, "")
	out := mustCtl(t, f, "ban", "add", "client_id", "bad-1", "--for", "1h", "--reason", "abuse")
	if !strings.Contains(out, "banned") {
		t.Errorf("ban add output %q", out)
	}
	list := mustCtl(t, f, "ban", "list")
	if row := tableRow(t, list, "client_id"); row[1] != "bad-1" || row[len(row)-1] != "abuse" {
		t.Errorf("ban row %q", row)
	}
	if r := runCtlAt(t, f, "ban", "add", "address", "not-an-ip"); r.code != 1 {
		t.Errorf("invalid address ban: exit %d, want 1", r.code)
	}
	mustCtl(t, f, "ban", "remove", "client_id", "bad-1")
	if list := mustCtl(t, f, "ban", "list"); strings.Contains(list, "bad-1") {
		t.Errorf("ban still listed after remove:\n%s", list)
	}
}
