package kafkatest

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// Ping asks the broker at addr for its API versions, the one request every
// Kafka broker answers in version 0, and returns nil when it answers
// without an error.
func Ping(ctx context.Context, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	const (
		apiVersionsKey = 18
		correlationID  = 1
		clientID       = "tauro-kafkatest"
	)
	// A request is its size, then the header: api key, api version,
	// correlation id and client id (int16 length, bytes). ApiVersions v0
	// has no body.
	req := binary.BigEndian.AppendUint32(nil, uint32(2+2+4+2+len(clientID)))
	req = binary.BigEndian.AppendUint16(req, apiVersionsKey)
	req = binary.BigEndian.AppendUint16(req, 0)
	req = binary.BigEndian.AppendUint32(req, correlationID)
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	if _, err := c.Write(req); err != nil {
		return err
	}
	// The response is its size, the correlation id and an error code first.
	var head [4 + 4 + 2]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return err
	}
	if id := binary.BigEndian.Uint32(head[4:8]); id != correlationID {
		return fmt.Errorf("kafkatest: %s answered request %d, not %d", addr, id, correlationID)
	}
	if code := int16(binary.BigEndian.Uint16(head[8:10])); code != 0 {
		return fmt.Errorf("kafkatest: %s answered ApiVersions with error code %d", addr, code)
	}
	return nil
}
