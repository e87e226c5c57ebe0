package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

const certsUsage = `Usage:
  starling certs init DIR [--nodes n1,n2,n3] [--hosts 127.0.0.1,localhost] [--clients c1,c2] [--days N] [--force | --if-missing]
  starling certs revoke --ca-dir DIR CERT.pem...

init writes a development certificate set into DIR:
  ca.pem, ca-key.pem             client CA: issues server.pem and the client certificates
  ca.crl                         empty revocation list of the client CA
  server.pem, server-key.pem     certificate of the tls and wss listeners (SANs from --hosts)
  peer-ca.pem, peer-ca-key.pem   peer CA: issues the node certificates of the peer port
  nodes/NAME.pem, NAME-key.pem   peer certificate of node NAME (DNS SANs: NAME and --hosts)
  clients/NAME.pem, NAME-key.pem client certificate with common name NAME
  gossip.key                     32 random bytes, base64, for gossip encryption (AES-256)
Keys are ECDSA P-256 and private key files have mode 0600. Existing files
are kept unless --force is given.

revoke adds certificates issued by DIR/ca.pem to DIR/ca.crl. Brokers that
read ca.crl pick up the change at their next reload.

The CA keys can issue certificates that the broker trusts: this set is for
development and tests, not for production.
`

// runCerts runs `starling certs` and returns the exit code: 0 on success,
// 1 when writing or reading files failed, 2 for invalid arguments.
func runCerts(args []string) int {
	return certsMain(args, os.Stdout, os.Stderr)
}

func certsMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, certsUsage)
		return 2
	}
	switch args[0] {
	case "init":
		return certsInit(args[1:], stdout, stderr)
	case "revoke":
		return certsRevoke(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, certsUsage)
		return 0
	}
	fmt.Fprintf(stderr, "starling certs: unknown command %q\n\n%s", args[0], certsUsage)
	return 2
}

// certsInitOptions are the parsed arguments of `starling certs init`.
type certsInitOptions struct {
	dir     string
	nodes   []string
	hosts   []string
	clients []string
	days    int
	force   bool
	// ifMissing makes init do nothing when DIR already holds a set (its
	// ca.pem), so a Compose init service can run before every start.
	ifMissing bool
}

func certsInit(args []string, stdout, stderr io.Writer) int {
	opts, err := parseCertsInit(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "starling certs init:", err)
		return 2
	}

	if opts.ifMissing && !opts.force {
		if _, err := os.Stat(filepath.Join(opts.dir, "ca.pem")); err == nil {
			fmt.Fprintf(stdout, "%s already holds a certificate set; nothing written\n", opts.dir)
			return 0
		}
	}
	files, err := buildDevPKI(opts, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "starling certs init:", err)
		return 1
	}
	if err := writeCertFiles(opts.dir, files, opts.force); err != nil {
		fmt.Fprintln(stderr, "starling certs init:", err)
		return 1
	}
	for _, f := range files {
		fmt.Fprintf(stdout, "wrote %s (%s)\n", filepath.Join(opts.dir, f.name), f.description)
	}
	return 0
}

// certName is the pattern of node and client names. They become file names
// and DNS SANs, so path separators and spaces are not allowed.
var certName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// hostName is the pattern of a DNS SAN given in --hosts.
var hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$`)

func parseCertsInit(args []string, stderr io.Writer) (certsInitOptions, error) {
	var opts certsInitOptions
	fs := flag.NewFlagSet("certs init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, certsUsage, "\nFlags of init:\n")
		fs.PrintDefaults()
	}
	nodes := fs.String("nodes", "", "comma-separated node names; each gets a peer certificate in nodes/")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated IP addresses and DNS names for server.pem and the node certificates")
	clients := fs.String("clients", "", "comma-separated client names; each gets a client certificate in clients/")
	fs.IntVar(&opts.days, "days", 365, "validity of every certificate and of the CRL, in days")
	fs.BoolVar(&opts.force, "force", false, "overwrite existing files")
	fs.BoolVar(&opts.ifMissing, "if-missing", false, "do nothing when DIR already holds a set (its ca.pem)")

	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return opts, err
	}
	if len(positional) != 1 {
		return opts, fmt.Errorf("want exactly one directory argument, got %d (see starling certs -h)", len(positional))
	}
	opts.dir = positional[0]
	opts.nodes, opts.hosts, opts.clients = splitList(*nodes), splitList(*hosts), splitList(*clients)

	if opts.days < 1 || opts.days > 100*365 {
		return opts, fmt.Errorf("--days %d is invalid: use 1 to %d", opts.days, 100*365)
	}
	if err := checkNames("--nodes", opts.nodes); err != nil {
		return opts, err
	}
	if err := checkNames("--clients", opts.clients); err != nil {
		return opts, err
	}
	if len(opts.hosts) == 0 {
		return opts, errors.New("--hosts is empty: give at least one IP address or DNS name")
	}
	for _, h := range opts.hosts {
		if net.ParseIP(h) == nil && !hostName.MatchString(h) {
			return opts, fmt.Errorf("--hosts: %q is neither an IP address nor a DNS name", h)
		}
	}
	return opts, nil
}

// parseInterspersed parses flags that may come before or after positional
// arguments, which the flag package alone stops at, and returns the
// positional ones. Every round consumes at least one argument.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func checkNames(flagName string, names []string) error {
	seen := make(map[string]bool)
	for _, n := range names {
		if !certName.MatchString(n) {
			return fmt.Errorf("%s: name %q is invalid: use letters, digits, '.', '_' and '-', starting with a letter or digit", flagName, n)
		}
		if seen[strings.ToLower(n)] {
			return fmt.Errorf("%s: name %q is given twice", flagName, n)
		}
		seen[strings.ToLower(n)] = true
	}
	return nil
}

// certFile is one file of the set, relative to the directory.
type certFile struct {
	name        string
	data        []byte
	mode        os.FileMode
	description string // printed after the path
}

// buildDevPKI generates every certificate, key, CRL and the gossip key in
// memory, so nothing is written when a generation step fails.
func buildDevPKI(opts certsInitOptions, now time.Time) ([]certFile, error) {
	notAfter := now.Add(time.Duration(opts.days) * 24 * time.Hour)
	var files []certFile

	clientCA, err := newCA("Starling development client CA", now, notAfter)
	if err != nil {
		return nil, err
	}
	peerCA, err := newCA("Starling development peer CA", now, notAfter)
	if err != nil {
		return nil, err
	}
	files = append(files, clientCA.files("ca", "client CA")...)
	files = append(files, peerCA.files("peer-ca", "peer CA")...)

	ips, dns := splitHosts(opts.hosts)
	server, err := clientCA.issue(leafTemplate{cn: "starling server", dns: dns, ips: ips,
		usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, now, notAfter)
	if err != nil {
		return nil, err
	}
	files = append(files, server.files("server", "server certificate for tls and wss listeners")...)

	for _, name := range opts.nodes {
		node, err := peerCA.issue(leafTemplate{cn: name, dns: append([]string{name}, dns...), ips: ips,
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}, now, notAfter)
		if err != nil {
			return nil, err
		}
		files = append(files, node.files(filepath.Join("nodes", name), "peer certificate of node "+name)...)
	}
	for _, name := range opts.clients {
		client, err := clientCA.issue(leafTemplate{cn: name,
			usages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, now, notAfter)
		if err != nil {
			return nil, err
		}
		files = append(files, client.files(filepath.Join("clients", name), "client certificate "+name)...)
	}

	crl, err := clientCA.revocationList(nil, big.NewInt(1), now, notAfter)
	if err != nil {
		return nil, err
	}
	files = append(files, certFile{name: "ca.crl", data: crl, mode: 0o644, description: "revocation list of the client CA (empty)"})

	gossip := make([]byte, 32)
	if _, err := rand.Read(gossip); err != nil {
		return nil, fmt.Errorf("generate gossip key: %w", err)
	}
	encoded := base64.StdEncoding.EncodeToString(gossip) + "\n"
	files = append(files, certFile{name: "gossip.key", data: []byte(encoded), mode: 0o600, description: "gossip encryption key (AES-256)"})
	return files, nil
}

func splitHosts(hosts []string) (ips []net.IP, dns []string) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return ips, dns
}

// keyPair is a certificate with its private key.
type keyPair struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// leafTemplate contains the fields that differ between issued certificates.
type leafTemplate struct {
	cn     string
	dns    []string
	ips    []net.IP
	usages []x509.ExtKeyUsage
}

// notBeforeSkew backdates every certificate so that a machine whose clock is
// a little behind the issuer's still accepts it.
const notBeforeSkew = time.Hour

func newCA(name string, now, notAfter time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key of %s: %w", name, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Starling development"}},
		NotBefore:             now.Add(-notBeforeSkew),
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	return createCert(tmpl, tmpl, key, key)
}

func (ca keyPair) issue(leaf leafTemplate, now, notAfter time.Time) (keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate key of %s: %w", leaf.cn, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return keyPair{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: leaf.cn},
		DNSNames:     leaf.dns,
		IPAddresses:  leaf.ips,
		NotBefore:    now.Add(-notBeforeSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  leaf.usages,
	}
	return createCert(tmpl, ca.cert, key, ca.key)
}

func createCert(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (keyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return keyPair{}, fmt.Errorf("create certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return keyPair{}, fmt.Errorf("parse certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	return keyPair{cert: cert, key: key}, nil
}

// randomSerial returns a positive serial number of up to 128 bits, well
// within the 20 bytes that RFC 5280 allows.
func randomSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

// files returns BASE.pem and BASE-key.pem.
func (kp keyPair) files(base, description string) []certFile {
	keyDER, err := x509.MarshalPKCS8PrivateKey(kp.key)
	if err != nil {
		// An ECDSA P-256 key always marshals; failing here is a bug.
		panic(fmt.Sprintf("marshal ECDSA key: %v", err))
	}
	return []certFile{
		{name: base + ".pem", data: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kp.cert.Raw}), mode: 0o644, description: description},
		{name: base + "-key.pem", data: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), mode: 0o600, description: "private key of " + description},
	}
}

// revocationList returns a PEM CRL of ca listing entries.
func (ca keyPair) revocationList(entries []x509.RevocationListEntry, number *big.Int, now, nextUpdate time.Time) ([]byte, error) {
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                nextUpdate,
		RevokedCertificateEntries: entries,
	}, ca.cert, ca.key)
	if err != nil {
		return nil, fmt.Errorf("create CRL of %q: %w", ca.cert.Subject.CommonName, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}), nil
}

// writeCertFiles writes files under dir. Without force it first checks that
// none exists, so a refused run writes nothing; creation with O_EXCL then
// also catches a file that appears meanwhile. With force each file is
// replaced by a rename, so a reader never sees half a file.
func writeCertFiles(dir string, files []certFile, force bool) error {
	if !force {
		var existing []string
		for _, f := range files {
			if _, err := os.Lstat(filepath.Join(dir, f.name)); err == nil {
				existing = append(existing, f.name)
			}
		}
		if len(existing) > 0 {
			return fmt.Errorf("%d files already exist in %s (%s): use --force to overwrite them, or choose another directory",
				len(existing), dir, strings.Join(existing, ", "))
		}
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		// The directories hold private keys, so only their owner may list them.
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return fmt.Errorf("create directory for %s: %w", path, err)
		}
		write := createExclusive
		if force {
			write = replaceFile
		}
		if err := write(path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

func createExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// replaceFile writes a temporary file beside path and renames it over path.
func replaceFile(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // fails harmlessly after the rename

	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("set mode of %s: %w", tmpName, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmpName, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", tmpName, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmpName, err)
	}
	if err := os.Rename(tmpName, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	return nil
}

func certsRevoke(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("certs revoke", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, certsUsage, "\nFlags of revoke:\n")
		fs.PrintDefaults()
	}
	caDir := fs.String("ca-dir", "", "directory written by starling certs init, with ca.pem, ca-key.pem and ca.crl")
	days := fs.Int("days", 0, "validity of the new CRL in days; 0 keeps the validity period of the current one")
	certPaths, err := parseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "starling certs revoke:", err)
		return 2
	}
	if *caDir == "" || len(certPaths) == 0 {
		fmt.Fprintln(stderr, "starling certs revoke: --ca-dir and at least one certificate file are required (see starling certs -h)")
		return 2
	}
	if *days < 0 || *days > 100*365 {
		fmt.Fprintf(stderr, "starling certs revoke: --days %d is invalid: use 0 to %d\n", *days, 100*365)
		return 2
	}

	if err := revokeCerts(*caDir, certPaths, *days, time.Now(), stdout); err != nil {
		fmt.Fprintln(stderr, "starling certs revoke:", err)
		return 1
	}
	return 0
}

// revokeCerts adds the certificates in certPaths to DIR/ca.crl and raises
// the CRL number. A certificate already listed is reported and skipped.
func revokeCerts(dir string, certPaths []string, days int, now time.Time, stdout io.Writer) error {
	ca, err := loadCA(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		return err
	}
	crlPath := filepath.Join(dir, "ca.crl")
	current, err := loadCRL(crlPath, ca.cert)
	if err != nil {
		return err
	}

	entries := current.RevokedCertificateEntries
	listed := make(map[string]bool)
	for _, e := range entries {
		listed[e.SerialNumber.Text(16)] = true
	}
	added := 0
	for _, path := range certPaths {
		cert, err := readCertificate(path)
		if err != nil {
			return err
		}
		if err := cert.CheckSignatureFrom(ca.cert); err != nil {
			return fmt.Errorf("%s was not issued by the client CA in %s: %w", path, filepath.Join(dir, "ca.pem"), err)
		}
		serial := cert.SerialNumber.Text(16)
		if listed[serial] {
			fmt.Fprintf(stdout, "%s (serial %s, %s) is already revoked\n", path, serial, cert.Subject)
			continue
		}
		listed[serial] = true
		entries = append(entries, x509.RevocationListEntry{SerialNumber: cert.SerialNumber, RevocationTime: now})
		fmt.Fprintf(stdout, "revoked %s (serial %s, %s)\n", path, serial, cert.Subject)
		added++
	}
	if added == 0 {
		return nil
	}

	period := time.Duration(days) * 24 * time.Hour
	if days == 0 {
		period = current.NextUpdate.Sub(current.ThisUpdate)
	}
	if period <= 0 {
		period = 365 * 24 * time.Hour
	}
	number := new(big.Int).Add(current.Number, big.NewInt(1))
	data, err := ca.revocationList(entries, number, now, now.Add(period))
	if err != nil {
		return err
	}
	if err := replaceFile(crlPath, data, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (CRL number %s, %d revoked)\n", crlPath, number, len(entries))
	return nil
}

func loadCA(certPath, keyPath string) (keyPair, error) {
	cert, err := readCertificate(certPath)
	if err != nil {
		return keyPair{}, err
	}

	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return keyPair{}, fmt.Errorf("read CA key: %w", err)
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return keyPair{}, fmt.Errorf("%s contains no PEM block: give the CA's private key", keyPath)
	}
	var key any
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return keyPair{}, fmt.Errorf("%s contains a %q block, expected PRIVATE KEY or EC PRIVATE KEY", keyPath, block.Type)
	}
	if err != nil {
		// The parse errors name the format, never the key bytes.
		return keyPair{}, fmt.Errorf("parse CA key %s: %w", keyPath, err)
	}

	signer, ok := key.(crypto.Signer)
	if !ok {
		return keyPair{}, fmt.Errorf("%s is not a signing key", keyPath)
	}
	if !publicKeysEqual(signer.Public(), cert.PublicKey) {
		return keyPair{}, fmt.Errorf("%s does not belong to %s: give the key of that CA", keyPath, certPath)
	}
	return keyPair{cert: cert, key: signer}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// loadCRL reads the CRL at path, PEM or DER, and checks that ca signed it.
// A missing file counts as an empty CRL with number 0.
func loadCRL(path string, ca *x509.Certificate) (*x509.RevocationList, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &x509.RevocationList{Number: big.NewInt(0)}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read CRL: %w", err)
	}
	if bytes.HasPrefix(bytes.TrimSpace(data), []byte("-----BEGIN")) {
		block, _ := pem.Decode(data)
		if block == nil || block.Type != "X509 CRL" {
			return nil, fmt.Errorf("%s contains no X509 CRL block: give a PEM or DER CRL of the client CA", path)
		}
		data = block.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("parse CRL %s: %w", path, err)
	}
	if err := crl.CheckSignatureFrom(ca); err != nil {
		return nil, fmt.Errorf("%s is not signed by the client CA: %w", path, err)
	}
	if crl.Number == nil {
		crl.Number = big.NewInt(0)
	}
	return crl, nil
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s contains no PEM CERTIFICATE block: give a PEM certificate file", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate %s: %w", path, err)
	}
	return cert, nil
}
