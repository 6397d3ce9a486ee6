module vigilsign

go 1.22
