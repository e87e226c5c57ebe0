package peer

import (
	"context"
	"errors"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	grpcpeer "google.golang.org/grpc/peer"
)

// Keepalive of gRPC connections between nodes. Clients ping an idle
// connection every grpcPingInterval, also without active RPCs, so a dead
// peer is noticed within grpcPingInterval+grpcPingTimeout. The server
// accepts pings up to every grpcMinPingInterval, below the client's
// interval, because a ping sooner than the server allows makes it close the
// connection with GOAWAY "too_many_pings".
const (
	grpcPingInterval    = 20 * time.Second
	grpcPingTimeout     = 10 * time.Second
	grpcMinPingInterval = 10 * time.Second
)

// GRPCListener returns the listener of inbound gRPC connections, for
// grpc.Server.Serve. Its Close, which grpc.Server.Stop calls, stops only
// gRPC's Accept.
func (p *Port) GRPCListener() net.Listener {
	return p.grpc
}

// GRPCServerOptions returns the options a grpc.Server on this port needs:
// transport credentials that expose the TLS state the port negotiated (for
// PeerName), keepalive settings that match GRPCDialOptions, and the
// Config.MaxMsgSize receive and send limits. The server must not add its
// own credentials: the port has already run the TLS handshake.
func (p *Port) GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(serverCreds{}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             grpcMinPingInterval,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    grpcPingInterval,
			Timeout: grpcPingTimeout,
		}),
		grpc.MaxRecvMsgSize(p.cfg.MaxMsgSize),
		grpc.MaxSendMsgSize(p.cfg.MaxMsgSize),
	}
}

// GRPCDialOptions returns the options for grpc.NewClient to reach the node
// called peerName at its peer port. They set mutual TLS whose server
// certificate must chain to the peer CA and name peerName (plaintext when
// the port has no TLS), a plain TCP dialer, keepalive within the server's
// enforcement policy, and the Config.MaxMsgSize call limits. The custom
// dialer also keeps grpc-go from sending peer traffic through an HTTP proxy
// taken from the environment.
func (p *Port) GRPCDialOptions(peerName string) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if p.clientTLS != nil {
		creds = credentials.NewTLS(p.dialConfig(peerName, grpcALPN))
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithContextDialer(dialTCP),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                grpcPingInterval,
			Timeout:             grpcPingTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(p.cfg.MaxMsgSize),
			grpc.MaxCallSendMsgSize(p.cfg.MaxMsgSize),
		),
		// Peers come back within seconds (a restart, a healed partition,
		// a pod whose DNS name resolves again): grpc-go's default backoff
		// grows to two minutes, so cap it at two seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
}

func dialTCP(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}

// PeerName returns, inside a gRPC handler on a port's server, the node name
// that the client's verified certificate claims (see certNodeName). It
// returns ok=false in plaintext and outside such a handler.
func PeerName(ctx context.Context) (string, bool) {
	pr, ok := grpcpeer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := pr.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.PeerCertificates) == 0 {
		return "", false
	}
	name, err := certNodeName(info.State.PeerCertificates[0])
	if err != nil {
		return "", false
	}
	return name, true
}

// serverCreds are the gRPC server's transport credentials. The port has
// run the TLS handshake before the hand-off, so ServerHandshake only
// reports its result: credentials.TLSInfo with TLS, and no security in
// plaintext.
type serverCreds struct{}

var errClientSide = errors.New("peer: the port's server credentials cannot dial: use GRPCDialOptions")

func (serverCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if sc, ok := conn.(*sniffedConn); ok && sc.tlsState != nil {
		return conn, credentials.TLSInfo{
			State:          *sc.tlsState,
			CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		}, nil
	}
	return conn, plaintextInfo{credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}}, nil
}

func (serverCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientSide
}

func (serverCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "starling-peer"}
}

func (c serverCreds) Clone() credentials.TransportCredentials { return c }

func (serverCreds) OverrideServerName(string) error { return nil }

// plaintextInfo is the AuthInfo of a plaintext connection.
type plaintextInfo struct {
	credentials.CommonAuthInfo
}

func (plaintextInfo) AuthType() string { return "insecure" }
