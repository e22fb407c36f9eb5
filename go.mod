module certmix

go 1.26
