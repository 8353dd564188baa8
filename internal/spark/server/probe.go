package server

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc"

	"github.com/tauro-exec/tauro-exec/internal/spark/sparkurl"
)

// Ping asks the Spark Connect server at remote (sc://host:port[/;params],
// its token included) to run SELECT 1 and checks the answer. A listening
// port is not enough: the gRPC service comes up before the session
// machinery behind it can run a query.
func Ping(ctx context.Context, remote string) error {
	r, err := sparkurl.Parse(remote)
	if err != nil {
		return err
	}
	b := &probeChannel{remote: r}
	defer b.close()
	spark, err := sql.NewSessionBuilder().WithChannelBuilder(b).Build(ctx)
	if err != nil {
		return err
	}
	df, err := spark.Sql(ctx, "SELECT 1 AS one")
	if err != nil {
		return err
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return err
	}
	if len(rows) != 1 || rows[0].At(0) != int32(1) {
		return fmt.Errorf("SELECT 1 answered %v", rows)
	}
	return nil
}

// probeChannel is a channel.Builder that keeps the connection it makes so
// the probe can close it; the client never closes its own.
type probeChannel struct {
	remote sparkurl.Remote
	conn   *grpc.ClientConn
}

func (b *probeChannel) Build(context.Context) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(b.remote.Addr, b.remote.DialOptions()...)
	b.conn = conn
	return conn, err
}

func (b *probeChannel) close() {
	if b.conn != nil {
		_ = b.conn.Close()
	}
}

func (b *probeChannel) User() string               { return "tauro-exec" }
func (b *probeChannel) Headers() map[string]string { return b.remote.Headers }
func (b *probeChannel) SessionId() string          { return "" } // the client makes its own
func (b *probeChannel) UserAgent() string          { return "tauro-exec/probe" }

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
