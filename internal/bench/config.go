package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Scenario is the shape of the traffic between publishers and subscribers.
type Scenario string

const (
	// ScenarioPairs connects Clients publishers and Clients subscribers.
	// Publisher i publishes to TOPIC_PREFIX/i and subscriber i subscribes to
	// that topic only.
	ScenarioPairs Scenario = "pairs"

	// ScenarioFanIn connects Clients publishers, each on its own topic, and
	// one subscriber to TOPIC_PREFIX/+.
	ScenarioFanIn Scenario = "fanin"

	// ScenarioFanOut connects one publisher on TOPIC_PREFIX/0 and Clients
	// subscribers to that topic.
	ScenarioFanOut Scenario = "fanout"

	// ScenarioShared connects Clients publishers, each on its own topic, and
	// SharedSubscribers subscribers to $share/SHARE_GROUP/TOPIC_PREFIX/+, so
	// that the broker delivers each message to one member of the group.
	ScenarioShared Scenario = "shared"

	// ScenarioStorm opens Clients MQTT connections as fast as
	// ConnectParallelism allows and measures accepted connections per
	// second. It publishes nothing.
	ScenarioStorm Scenario = "storm"

	// ScenarioIdle opens Clients MQTT connections, holds them open and idle
	// for Hold, and measures the broker's resident memory per connection.
	ScenarioIdle Scenario = "idle"
)

// Limits that keep every run bounded.
const (
	MaxClients     = 50000
	MaxPayloadSize = 16 << 20
	MaxInflight    = 65535
	MaxDuration    = 24 * time.Hour
	MaxCount       = math.MaxUint32 // sequence numbers are 32 bits
)

// DefaultAddr is the broker address of a run that names none. It is the
// loopback address, so that a run never reaches another host by default.
const DefaultAddr = "127.0.0.1:1883"

// Config describes one run. DefaultConfig returns the defaults and Validate
// checks every field.
type Config struct {
	// Addr is the broker's TCP address, host:port. Default: DefaultAddr.
	Addr string

	// SubAddr, when not empty, is the address the subscribers connect to,
	// while the publishers connect to Addr: a cross-node run against two
	// nodes of one cluster. Two brokers that share no messages deliver
	// nothing, so against them the run only checks the plumbing.
	SubAddr string

	// Scenario selects the topology. Default: ScenarioPairs.
	Scenario Scenario

	// Clients is the number of pairs (pairs), of publishers (fanin) or of
	// subscribers (fanout). Default: 10.
	Clients int

	// SharedSubscribers is the number of members of the shared subscription
	// group of ScenarioShared. Default: 4.
	SharedSubscribers int

	// ShareGroup is the share name of ScenarioShared. Default: "bench".
	ShareGroup string

	// QoS of every PUBLISH and of every subscription: 0, 1 or 2.
	QoS byte

	// PayloadSize is the size of each payload in bytes, at least HeaderSize.
	// Default: 64.
	PayloadSize int

	// Inflight caps the messages each publisher may have unconfirmed. A QoS
	// 1 or 2 message is confirmed by its PUBACK or PUBCOMP. A QoS 0 message
	// has no acknowledgement, so the publisher sends a PINGREQ after every
	// Inflight/2 messages, and each PINGRESP confirms the messages before its
	// PINGREQ: a broker reads the packets of one connection in order. For
	// MQTT 5.0 the cap is also lowered to the broker's Receive Maximum.
	// Default: 16.
	Inflight int

	// Rate is the total publish rate over all publishers, in messages per
	// second, spread evenly across them. 0 means saturating: each publisher
	// sends as fast as its Inflight window allows.
	Rate float64

	// Duration bounds the publishing phase. Default: 10 s; maximum: MaxDuration.
	Duration time.Duration

	// Count bounds the messages of each publisher; 0 means no bound other
	// than Duration. The run stops at whichever bound comes first.
	Count uint64

	// Drain is how long the run waits after publishing stops for outstanding
	// acknowledgements and deliveries. Default: 2 s.
	Drain time.Duration

	// Persistent makes subscribers connect with clean session 0 (3.1.1) or
	// clean start 0 and SessionExpiry (5.0), so that the broker keeps their
	// sessions. Publishers always use clean sessions.
	Persistent bool

	// SessionExpiry is the MQTT 5.0 session expiry of persistent subscribers.
	// Default: 5 minutes.
	SessionExpiry time.Duration

	// Version is the protocol level: Version311 (default) or Version5.
	Version byte

	// TopicPrefix is the first topic level of every topic. Default: "bench".
	TopicPrefix string

	// ClientPrefix starts every client identifier: PREFIX-pub-I and
	// PREFIX-sub-I. Default: "starling-bench".
	ClientPrefix string

	// KeepAlive is the MQTT keep alive sent in CONNECT. Default: 60 s.
	KeepAlive time.Duration

	// ConnectTimeout bounds the TCP connect and each handshake step (CONNACK,
	// SUBACK). Default: 5 s.
	ConnectTimeout time.Duration

	// Username and Password go into CONNECT when they are not empty.
	Username string
	Password string

	// ConnectParallelism bounds the connection handshakes in progress at
	// once in ScenarioStorm and ScenarioIdle. Default: 64.
	ConnectParallelism int

	// Hold is how long ScenarioIdle keeps its connections open after the
	// last one opened. Default: 10 s.
	Hold time.Duration

	// BrokerPID, when not 0, is a broker process on this machine whose CPU
	// time and resident memory the run samples from /proc before and after.
	BrokerPID int

	// BrokerGCURL, when not empty, is an HTTP endpoint of the broker that
	// forces a garbage collection and returns free memory to the operating
	// system, such as Starling's POST /debug/free-memory (served with
	// --pprof). The idle scenario POSTs an empty body to it right before
	// each of its two RSS samples, so that both count live memory rather
	// than garbage the broker has not yet returned. The request follows no
	// redirect and uses no proxy. It needs BrokerPID.
	BrokerGCURL string

	// TLS makes every client connect over TLS (1.2 or later). The server's
	// certificate is verified against the system's roots, or against CAFile
	// when it is set, for the host of Addr (and of SubAddr for the
	// subscribers) or ServerName when it is set.
	TLS bool

	// CAFile is a PEM file of the CA certificates that the broker's
	// certificate must chain to. Empty means the system's roots.
	CAFile string

	// ServerName replaces the host of the broker address as the name the
	// broker's certificate must carry, and is sent as SNI.
	ServerName string

	// InsecureSkipVerify accepts any server certificate without checking it.
	// The traffic is encrypted but not authenticated, so a run with it
	// measures the broker only if nothing sits between the tool and the
	// broker. It excludes CAFile.
	InsecureSkipVerify bool

	// Progress receives one line per second while the run publishes. Nil
	// means no progress output.
	Progress io.Writer
}

// DefaultConfig returns a saturating QoS 0 run of 10 pairs for 10 s against
// DefaultAddr.
func DefaultConfig() Config {
	return Config{
		Addr:               DefaultAddr,
		Scenario:           ScenarioPairs,
		Clients:            10,
		SharedSubscribers:  4,
		ShareGroup:         "bench",
		ConnectParallelism: 64,
		Hold:               10 * time.Second,
		PayloadSize:        64,
		Inflight:           16,
		Duration:           10 * time.Second,
		Drain:              2 * time.Second,
		SessionExpiry:      5 * time.Minute,
		Version:            Version311,
		TopicPrefix:        "bench",
		ClientPrefix:       "starling-bench",
		KeepAlive:          60 * time.Second,
		ConnectTimeout:     5 * time.Second,
	}
}

// Validate checks every field and returns an error naming the first invalid
// one with its accepted range. It fills no defaults.
func (c *Config) Validate() error {
	if err := validateAddr(c.Addr); err != nil {
		return err
	}
	if c.SubAddr != "" {
		if err := validateAddr(c.SubAddr); err != nil {
			return fmt.Errorf("subscriber %w", err)
		}
		if c.Scenario == ScenarioStorm || c.Scenario == ScenarioIdle {
			return fmt.Errorf("subscriber address: the %s scenario has no subscribers: remove it", c.Scenario)
		}
	}
	switch c.Scenario {
	case ScenarioPairs, ScenarioFanIn, ScenarioFanOut, ScenarioStorm, ScenarioIdle:
	case ScenarioShared:
		if c.SharedSubscribers < 1 || c.SharedSubscribers > MaxClients {
			return fmt.Errorf("shared subscribers: %d is out of range 1..%d", c.SharedSubscribers, MaxClients)
		}
		if err := validateShareGroup(c.ShareGroup); err != nil {
			return err
		}
	default:
		return fmt.Errorf("scenario: %q is invalid: use pairs, fanin, fanout, shared, storm or idle", c.Scenario)
	}
	if c.Scenario == ScenarioStorm || c.Scenario == ScenarioIdle {
		switch {
		case c.ConnectParallelism < 1 || c.ConnectParallelism > 4096:
			return fmt.Errorf("connect parallelism: %d is out of range 1..4096", c.ConnectParallelism)
		case c.Hold < 0 || c.Hold > MaxDuration:
			return fmt.Errorf("hold: %v is out of range [0, %v]", c.Hold, MaxDuration)
		}
	}

	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("clients: %d is out of range 1..%d", c.Clients, MaxClients)
	case c.QoS > 2:
		return fmt.Errorf("qos: %d is invalid: use 0, 1 or 2", c.QoS)
	case c.PayloadSize < HeaderSize || c.PayloadSize > MaxPayloadSize:
		return fmt.Errorf("payload size: %d bytes is out of range %d..%d", c.PayloadSize, HeaderSize, MaxPayloadSize)
	case c.Inflight < 1 || c.Inflight > MaxInflight:
		return fmt.Errorf("inflight: %d is out of range 1..%d", c.Inflight, MaxInflight)
	case c.Rate < 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("rate: %v is invalid: use 0 (saturating) or a positive number of messages per second", c.Rate)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration: %v is out of range (0, %v]", c.Duration, MaxDuration)
	case c.Count > MaxCount:
		return fmt.Errorf("count: %d exceeds the maximum of %d messages per publisher", c.Count, uint64(MaxCount))
	case c.Drain < 0 || c.Drain > time.Hour:
		return fmt.Errorf("drain: %v is out of range [0, 1h]", c.Drain)
	case c.Version != Version311 && c.Version != Version5:
		return fmt.Errorf("protocol version: level %d is invalid: use %d (3.1.1) or %d (5.0)", c.Version, Version311, Version5)
	case c.Persistent && c.Version == Version5 && (c.SessionExpiry < time.Second || c.SessionExpiry > math.MaxUint32*time.Second):
		return fmt.Errorf("session expiry: %v is out of range 1s..%ds", c.SessionExpiry, uint32(math.MaxUint32))
	case c.KeepAlive < 0 || c.KeepAlive > 65535*time.Second:
		return fmt.Errorf("keep alive: %v is out of range 0..65535s", c.KeepAlive)
	case c.ConnectTimeout <= 0:
		return fmt.Errorf("connect timeout: %v must be positive", c.ConnectTimeout)
	case c.BrokerPID < 0:
		return fmt.Errorf("broker pid: %d is invalid", c.BrokerPID)
	case c.BrokerGCURL != "" && c.Scenario != ScenarioIdle:
		return fmt.Errorf("broker gc url: only the idle scenario samples memory after a forced collection, not %s: remove it", c.Scenario)
	case c.BrokerGCURL != "" && c.BrokerPID == 0:
		return errors.New("broker gc url: a forced collection only serves the broker's memory samples: set the broker pid (--broker-pid) too")
	case c.Password != "" && c.Username == "" && c.Version == Version311:
		return errors.New("password: MQTT 3.1.1 does not allow a password without a username: set a username too")
	}

	if c.BrokerGCURL != "" {
		if err := validateGCURL(c.BrokerGCURL); err != nil {
			return err
		}
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	if err := validateTopicPart("topic prefix", c.TopicPrefix); err != nil {
		return err
	}
	if c.ClientPrefix == "" || len(c.ClientPrefix) > 200 {
		return fmt.Errorf("client prefix: %q must be 1 to 200 bytes", c.ClientPrefix)
	}
	return nil
}

func validateAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address: %q is invalid: use HOST:PORT: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("address: %q has no host: use HOST:PORT, for example %s", addr, DefaultAddr)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("address: port %q is out of range 1..65535", port)
	}
	return nil
}

// validateGCURL checks that u is an absolute http or https URL with a host
// and nothing a POST would not send (user information, a fragment).
func validateGCURL(u string) error {
	parsed, err := url.Parse(u)
	if err != nil {
		return fmt.Errorf("broker gc url: %q is not a URL such as http://127.0.0.1:8080/debug/free-memory: %w", u, err)
	}
	switch {
	case parsed.Scheme != "http" && parsed.Scheme != "https":
		return fmt.Errorf("broker gc url: %q must start with http:// or https://, for example http://127.0.0.1:8080/debug/free-memory", u)
	case parsed.Host == "":
		return fmt.Errorf("broker gc url: %q has no host", u)
	case parsed.User != nil:
		return fmt.Errorf("broker gc url: %q must not contain user information", u)
	case parsed.Fragment != "":
		return fmt.Errorf("broker gc url: %q must not contain a fragment", u)
	}
	return nil
}

// validateTLS checks the TLS fields: the others need TLS, and
// InsecureSkipVerify excludes CAFile.
func (c *Config) validateTLS() error {
	if !c.TLS {
		switch {
		case c.CAFile != "":
			return errors.New("tls: a CA file (--cafile) needs TLS (--tls)")
		case c.ServerName != "":
			return errors.New("tls: a server name (--server-name) needs TLS (--tls)")
		case c.InsecureSkipVerify:
			return errors.New("tls: skipping verification (--insecure) needs TLS (--tls)")
		}
		return nil
	}
	if c.InsecureSkipVerify && c.CAFile != "" {
		return errors.New("tls: a CA file (--cafile) and skipping verification (--insecure) exclude each other: the CA file would not be used")
	}
	if strings.ContainsAny(c.ServerName, " /\x00") {
		return fmt.Errorf("tls: server name %q is not a host name", c.ServerName)
	}
	return nil
}

// validateTopicPart checks a topic prefix: it must not be empty and must not
// contain wildcards or the null character, which are invalid in a topic name.
func validateTopicPart(field, s string) error {
	if s == "" {
		return fmt.Errorf("%s: must not be empty", field)
	}
	if strings.ContainsAny(s, "+#\x00") {
		return fmt.Errorf("%s: %q must not contain '+', '#' or NUL", field, s)
	}
	if len(s) > 1000 {
		return fmt.Errorf("%s: %d bytes exceeds the maximum of 1000", field, len(s))
	}
	return nil
}

// validateShareGroup checks a share name: it must not be empty and must not
// contain '/', '+' or '#' [MQTT-4.8.2-2].
func validateShareGroup(s string) error {
	if s == "" || len(s) > 200 {
		return fmt.Errorf("share group: %q must be 1 to 200 bytes", s)
	}
	if strings.ContainsAny(s, "/+#\x00") {
		return fmt.Errorf("share group: %q must not contain '/', '+', '#' or NUL", s)
	}
	return nil
}

// topology returns the publishers and subscribers of the scenario.
func (c *Config) topology() topology {
	n := c.Clients
	switch c.Scenario {
	case ScenarioShared:
		return topology{publishers: n, subscribers: c.SharedSubscribers, wildcard: true, shareGroup: c.ShareGroup}
	case ScenarioFanIn:
		return topology{publishers: n, subscribers: 1, sharedSource: false, wildcard: true}
	case ScenarioFanOut:
		return topology{publishers: 1, subscribers: n, sharedSource: true}
	default:
		return topology{publishers: n, subscribers: n}
	}
}

// topology maps the scenario to clients, topics and the publishers each
// subscriber hears.
type topology struct {
	publishers  int
	subscribers int

	// sharedSource: every subscriber hears publisher 0 (fanout).
	sharedSource bool

	// wildcard: the subscriber hears every publisher (fanin, shared).
	wildcard bool

	// shareGroup, when not empty, puts every subscriber into one shared
	// subscription group, so that each message reaches one of them (shared).
	shareGroup string
}

// publisherTopic returns the topic of publisher i.
func (t topology) publisherTopic(prefix string, i int) string {
	return prefix + "/" + strconv.Itoa(i)
}

// subscriberFilter returns the topic filter of subscriber j.
func (t topology) subscriberFilter(prefix string, j int) string {
	switch {
	case t.shareGroup != "":
		return "$share/" + t.shareGroup + "/" + prefix + "/+"
	case t.wildcard:
		return prefix + "/+"
	case t.sharedSource:
		return prefix + "/0"
	default:
		return prefix + "/" + strconv.Itoa(j)
	}
}

// sources returns the range [first, first+n) of publishers whose messages
// subscriber j receives.
func (t topology) sources(j int) (first, n int) {
	switch {
	case t.wildcard:
		return 0, t.publishers
	case t.sharedSource:
		return 0, 1
	default:
		return j, 1
	}
}
