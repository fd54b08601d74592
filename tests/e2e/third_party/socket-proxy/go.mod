module github.com/wollomatic/socket-proxy

go 1.22.6
