module billgen

go 1.22
