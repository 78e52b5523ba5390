module github.com/sluicehq/sluice

go 1.26

require (
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/redis/rueidis v1.0.79 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
)
