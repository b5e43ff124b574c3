module waflow/goload

go 1.22
