// Command segsvc-example shows how a Go service calls segsvc: an API key sent as
// `authorization: Bearer <key>` with every call, a deadline on every call, and a retry
// policy (UNAVAILABLE on reads only) in the channel's service config. It adds a segment
// to a user, reads the user back and prints the slugs.
//
//	SEGSVC_API_KEY=... segsvc-example -target localhost:50051 -user 42 -add NEW_CHECKOUT
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	segmentationv1 "github.com/segsvc/segsvc/clients/go/segmentation/v1"
)

// Reads are safe to repeat when the server was unavailable; writes without a request id
// are not, so they are left out of the retry policy.
const serviceConfig = `{
  "methodConfig": [{
    "name": [
      {"service": "segmentation.v1.UserService", "method": "GetUserSegments"},
      {"service": "segmentation.v1.UserService", "method": "BatchGetUserSegments"},
      {"service": "segmentation.v1.SegmentService", "method": "GetSegment"},
      {"service": "segmentation.v1.SegmentService", "method": "ListSegments"}
    ],
    "retryPolicy": {
      "maxAttempts": 4,
      "initialBackoff": "0.1s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// apiKey attaches the key to every call; RequireTransportSecurity is false so the
// example also works on a plaintext loopback port (use TLS across a network).
type apiKey string

func (k apiKey) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(k)}, nil
}

func (apiKey) RequireTransportSecurity() bool { return false }

func main() {
	target := flag.String("target", "localhost:50051", "segsvc address")
	userID := flag.Int64("user", 0, "end-user id")
	add := flag.String("add", "", "segment slug to add")
	flag.Parse()
	key := os.Getenv("SEGSVC_API_KEY")
	if key == "" || *userID <= 0 || *add == "" {
		fmt.Fprintln(os.Stderr, "usage: SEGSVC_API_KEY=... segsvc-example -user ID -add SLUG")
		os.Exit(2)
	}

	conn, err := grpc.Dial(*target,
		grpc.WithInsecure(),
		grpc.WithPerRPCCredentials(apiKey(key)),
		grpc.WithDefaultServiceConfig(serviceConfig),
	)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	users := segmentationv1.NewUserServiceClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = users.UpdateUserSegments(ctx, &segmentationv1.UpdateUserSegmentsRequest{
		UserId: *userID,
		Add:    []*segmentationv1.SegmentAddition{{Slug: *add}},
	})
	if err != nil {
		fail(err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reply, err := users.GetUserSegments(ctx, &segmentationv1.GetUserSegmentsRequest{UserId: *userID})
	if err != nil {
		fail(err)
	}
	slugs := make([]string, 0, len(reply.GetUser().GetSegments()))
	for _, segment := range reply.GetUser().GetSegments() {
		slugs = append(slugs, segment.GetSlug())
	}
	fmt.Printf("user %d: %s\n", reply.GetUser().GetUserId(), strings.Join(slugs, " "))
}

func fail(err error) {
	s := status.Convert(err)
	fmt.Fprintf(os.Stderr, "segsvc-example: %s: %s\n", s.Code(), s.Message())
	os.Exit(1)
}
