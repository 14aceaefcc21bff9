// The Go stubs for segsvc (segmentation/v1) and a small example caller.
//
// The versions are the oldest this code is built and tested with: Debian 12's packaged
// gRPC and protobuf modules (golang-google-grpc-dev, golang-google-protobuf-dev), which the
// project's tests use offline in GOPATH mode (see `make go-example`). With network
// access, `go mod tidy && go build ./...` works as usual.
module github.com/segsvc/segsvc/clients/go

go 1.19

require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
