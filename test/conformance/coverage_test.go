package conformance

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// update makes TestCoverage_Table rewrite docs/conformance.md.
var update = flag.Bool("update", false, "rewrite docs/conformance.md from the coverage table")

// docsPath is docs/conformance.md, relative to this package's directory.
var docsPath = filepath.Join("..", "..", "docs", "conformance.md")

// Parties a statement binds, taken from the subject of its sentence.
const (
	bindsServer = "Server"
	bindsClient = "Client"
	bindsBoth   = "Both"
)

// Reasons for statements that no test covers.
const (
	reasonClientOnly           = "binds the client only, and nothing the broker does shows whether a client obeys it"
	reasonNoBridge             = "applies to a server that connects to other servers as a bridge, which the node does not do"
	reasonLengthPrefix         = "the two-byte length prefix of an MQTT string cannot express more than 65,535 bytes, so nothing on the wire can break it"
	reasonTransientError       = "a transient error inside the broker cannot be caused from the wire"
	reasonAliasAlwaysAnnounced = "the node always announces a Topic Alias Maximum above 0 (Limits.MaxTopicAlias, where 0 means the default of 64); TestV5_TopicAliasAboveMaximumCloses checks the same reaction for a maximum above 0"
)

// statement is one row of the coverage table.
type statement struct {
	version byte     // v3 (MQTT 3.1.1) or v5 (MQTT 5.0)
	id      string   // "MQTT-x.y.z-n"
	binds   string   // bindsServer, bindsClient or bindsBoth
	tests   []string // tests that check the statement
	reason  string   // why no test does, when tests is empty
}

func covered(version byte, id, binds string, tests ...string) statement {
	return statement{version: version, id: id, binds: binds, tests: tests}
}

func untested(version byte, id, binds, reason string) statement {
	return statement{version: version, id: id, binds: binds, reason: reason}
}

// tagPattern matches a doc comment line of statement tags, such as
// "[MQTT-3.3.1-9] [MQTT-3.3.1-10] v5".
var (
	tagLine = regexp.MustCompile(`^((?:\[MQTT-[0-9.]+-[0-9]+\]\s*)+)(v3|v5)$`)
	tagID   = regexp.MustCompile(`\[(MQTT-[0-9.]+-[0-9]+)\]`)
)

// testFunc is one test function as the coverage check parses it.
type testFunc struct {
	name  string
	file  string
	tags  []string // "v5 MQTT-3.3.1-9"
	gap   string   // reason given to knownGap, if the test calls it
	field string   // node.Config field named in requireNodeField, if any
}

// parseTests reads every _test.go file of the package and returns its test
// functions with their statement tags and known-gap marks.
func parseTests(t *testing.T) map[string]*testFunc {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files found: %v", err)
	}
	fset := token.NewFileSet()
	tests := map[string]*testFunc{}
	for _, file := range files {
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !strings.HasPrefix(fn.Name.Name, "Test") {
				continue
			}
			tf := &testFunc{name: fn.Name.Name, file: file}
			if fn.Doc != nil {
				for _, c := range fn.Doc.List {
					m := tagLine.FindStringSubmatch(strings.TrimSpace(strings.TrimPrefix(c.Text, "//")))
					if m == nil {
						continue
					}
					for _, id := range tagID.FindAllStringSubmatch(m[1], -1) {
						tf.tags = append(tf.tags, m[2]+" "+id[1])
					}
				}
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				name, ok := call.Fun.(*ast.Ident)
				if !ok {
					return true
				}
				switch {
				case name.Name == "knownGap" && len(call.Args) == 2:
					tf.gap = stringLit(call.Args[1])
				case name.Name == "requireNodeField" && len(call.Args) == 4:
					tf.field = stringLit(call.Args[1])
				}
				return true
			})
			tests[tf.name] = tf
		}
	}
	return tests
}

func stringLit(e ast.Expr) string {
	lit, ok := e.(*ast.BasicLit)
	if !ok || lit.Kind != token.STRING {
		return "?"
	}
	s, err := strconv.Unquote(lit.Value)
	if err != nil {
		return "?"
	}
	return s
}

func versionTag(v byte) string {
	if v == v5 {
		return "v5"
	}
	return "v3"
}

// TestCoverage_Table checks the coverage table against the tests. Every
// statement appears once, with tests that exist and carry its tag, or with a
// reason. Every tag in a test names a statement whose row lists that test.
// The test prints covered/total per version, and with -update it rewrites
// docs/conformance.md.
func TestCoverage_Table(t *testing.T) {
	tests := parseTests(t)
	counts := map[byte]int{}
	rows := map[string]statement{}
	for _, st := range statements {
		key := versionTag(st.version) + " " + st.id
		counts[st.version]++
		if _, dup := rows[key]; dup {
			t.Errorf("%s is listed twice", key)
		}
		rows[key] = st
		if (len(st.tests) == 0) == (st.reason == "") {
			t.Errorf("%s needs either tests or a reason, not both or neither", key)
		}
		if st.binds != bindsServer && st.binds != bindsClient && st.binds != bindsBoth {
			t.Errorf("%s binds %q", key, st.binds)
		}
		for _, name := range st.tests {
			tf, ok := tests[name]
			switch {
			case !ok:
				t.Errorf("%s names %s, which does not exist", key, name)
			case !slices.Contains(tf.tags, key):
				t.Errorf("%s names %s, whose doc comment lacks the tag [%s] %s", key, name, st.id, versionTag(st.version))
			}
		}
	}
	// The standards number 141 statements in MQTT 3.1.1 and 251 in 5.0.
	if counts[v3] != 141 || counts[v5] != 251 {
		t.Errorf("the table has %d MQTT 3.1.1 and %d MQTT 5.0 statements, want 141 and 251", counts[v3], counts[v5])
	}
	for _, tf := range tests {
		for _, tag := range tf.tags {
			st, ok := rows[tag]
			switch {
			case !ok:
				t.Errorf("%s is tagged %s, which is not a statement of that version", tf.name, tag)
			case !slices.Contains(st.tests, tf.name):
				t.Errorf("%s is tagged %s, but the table row does not list it", tf.name, tag)
			}
		}
	}

	for _, v := range []byte{v3, v5} {
		c := coverageOf(v)
		t.Logf("MQTT %s: %d/%d server statements covered by a test; %d client statements with a tested broker reaction",
			versionName(v), c.serverCovered, c.serverTotal, c.clientCovered)
	}
	if *update {
		if err := os.WriteFile(docsPath, []byte(renderDocs(tests)), 0o644); err != nil {
			t.Fatalf("write %s: %v", docsPath, err)
		}
		t.Logf("wrote %s", docsPath)
	}
}

// coverage counts the rows of one version.
type coverage struct {
	serverTotal, serverCovered int // rows binding the server (Server or Both)
	clientTotal, clientCovered int // rows binding only the client
}

func coverageOf(version byte) coverage {
	var c coverage
	for _, st := range statements {
		if st.version != version {
			continue
		}
		if st.binds == bindsClient {
			c.clientTotal++
			if len(st.tests) > 0 {
				c.clientCovered++
			}
			continue
		}
		c.serverTotal++
		if len(st.tests) > 0 {
			c.serverCovered++
		}
	}
	return c
}

// printSummary writes covered/total per version and how the covering tests
// ended in this run, and lists the known gaps that showed.
func printSummary(w io.Writer) {
	results.Lock()
	defer results.Unlock()
	if len(results.byTest) == 0 {
		return
	}
	target := "an in-process node"
	if addr := externalAddr(); addr != "" {
		target = addr
	}
	fmt.Fprintf(w, "\nconformance summary against %s:\n", target)
	for _, v := range []byte{v3, v5} {
		c := coverageOf(v)
		status := map[string]int{}
		for _, st := range statements {
			if st.version != v || st.binds == bindsClient || len(st.tests) == 0 {
				continue
			}
			status[statementStatus(st)]++
		}
		fmt.Fprintf(w, "  MQTT %-5s %3d/%d server statements covered by a test: %d passed, %d known gaps, %d failed, %d skipped or not run\n",
			versionName(v), c.serverCovered, c.serverTotal, status["pass"], status["gap"], status["fail"], status["skip"])
	}
	var gaps []string
	for name, reason := range results.gaps {
		gaps = append(gaps, fmt.Sprintf("    %s: %s", name, reason))
	}
	sort.Strings(gaps)
	if len(gaps) > 0 {
		fmt.Fprintf(w, "  known gaps (CONFORMANCE_STRICT=1 makes them fail):\n%s\n", strings.Join(gaps, "\n"))
	}
}

// statementStatus combines the results of a statement's tests. A failure
// wins over a known gap, which wins over a skip, and a test that did not run
// counts as a skip. The caller holds the results lock.
func statementStatus(st statement) string {
	rank := map[string]int{"pass": 0, "skip": 1, "gap": 2, "fail": 3}
	worst := "pass"
	for _, name := range st.tests {
		s, ok := results.byTest[name]
		if !ok {
			s = "skip"
		}
		if rank[s] > rank[worst] {
			worst = s
		}
	}
	return worst
}

// renderDocs returns docs/conformance.md.
func renderDocs(tests map[string]*testFunc) string {
	var sb strings.Builder
	sb.WriteString(`# MQTT conformance

This page is generated by ` + "`go test ./test/conformance -run TestCoverage_Table -update`" + ` from the
coverage table in test/conformance/statements_test.go. Do not edit it by hand.

The suite in test/conformance checks the normative statements of MQTT 3.1.1 (OASIS Standard,
29 October 2014) and MQTT 5.0 (OASIS Standard, 7 March 2019) that bind a server, one test per
statement or group of statements, over TCP with a raw client. ` + "`make conformance`" + ` runs it
against an in-process node and prints how many statements pass; ` + "`CONFORMANCE_ADDR=host:port`" + `
runs the same tests against another broker, for example Debian's mosquitto, and tests that need a
node setting skip there.

The two standards number their statements differently, so every statement is keyed by version and
identifier. "Binds" says whom a statement binds: the server, the client, or both. Client statements
have a test where the broker's reaction to a client that breaks them is defined and testable.

`)
	sb.WriteString("## Summary\n\n| Version | Server statements covered by a test | Client statements with a tested broker reaction |\n|---|---|---|\n")
	for _, v := range []byte{v3, v5} {
		c := coverageOf(v)
		fmt.Fprintf(&sb, "| MQTT %s | %d of %d | %d of %d |\n", versionName(v), c.serverCovered, c.serverTotal, c.clientCovered, c.clientTotal)
	}

	sb.WriteString("\n## Known gaps\n\nTests marked with `knownGap` check statements that the node does not honour yet. They skip\nunless `CONFORMANCE_STRICT=1`, which makes them fail. Tests that need a node setting that\nnode.Config does not have yet skip as known gaps too.\n\n| Test | Statements | Gap |\n|---|---|---|\n")
	var names []string
	for name, tf := range tests {
		if tf.gap != "" || tf.field != "" && !fieldExists(tf.field) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		tf := tests[name]
		gap := tf.gap
		if gap == "" {
			gap = "skips while node.Config has no field " + tf.field
		}
		fmt.Fprintf(&sb, "| %s | %s | %s |\n", name, strings.Join(tf.tags, ", "), gap)
	}

	for _, v := range []byte{v3, v5} {
		fmt.Fprintf(&sb, "\n## MQTT %s\n\n| Statement | Binds | Test or reason |\n|---|---|---|\n", versionName(v))
		for _, st := range statements {
			if st.version != v {
				continue
			}
			cell := st.reason
			if len(st.tests) > 0 {
				cell = strings.Join(st.tests, ", ")
			}
			fmt.Fprintf(&sb, "| %s | %s | %s |\n", st.id, st.binds, cell)
		}
	}
	return sb.String()
}
