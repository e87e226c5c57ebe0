package fsm

import (
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/starling-mqtt/starling/proto/clusterpb"
)

// EncodeCommand encodes a command of a type of cluster version 1, not
// skippable, as the data of a raft log entry. Proposers of a type added
// later build the clusterpb.Command themselves, with
// ClusterVersionRequired set, and encode it with proto.Marshal.
func EncodeCommand(typ clusterpb.CommandType, body proto.Message) ([]byte, error) {
	b, err := proto.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s body: %w", typ, err)
	}
	data, err := proto.Marshal(&clusterpb.Command{Type: uint32(typ), Body: b})
	if err != nil {
		return nil, fmt.Errorf("encode %s envelope: %w", typ, err)
	}
	return data, nil
}
