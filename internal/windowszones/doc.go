// Package windowszones maps the Windows time zone ids that Power BI uses
// (the localTimeZoneId of a dataset's refresh schedule: "UTC", "Pacific
// Standard Time", "W. Europe Standard Time", ...) to IANA names and back.
//
// The table is generated (go generate) from Unicode CLDR's
// common/supplemental/windowsZones.xml, vendored beside this file: each
// Windows id maps to the zone of its territory "001" entry, CLDR's default.
// The vendored copy is unicode-org/cldr at commit
// 062dc06d16b0884bc42b0b04e5408aec6b85eb20 (mapTimezones
// otherVersion="7e11800" typeVersion="2021a"; 139 Windows ids).
//
// IANA names are CLDR's canonical spellings, which are sometimes the older
// link names (Asia/Calcutta, not Asia/Kolkata; Europe/Kiev, not
// Europe/Kyiv); Go's time/tzdata loads them all. The package does not
// resolve IANA aliases, and it knows nothing of Windows zone display
// names or of zones Microsoft added after the vendored file.
package windowszones
