package configs

import (
	"cmp"
	"os"
	"strings"
)

// Clouds maps a cloud name to its endpoints: the Power BI REST root, the
// Entra ID authority host and the token scope of each Microsoft cloud, as
// listed in "Power BI for US government customers" and "Embed for national
// clouds" (https://learn.microsoft.com/power-bi/developer/embedded/embed-sample-for-customers-national-clouds).
// The PostgreSQL scopes are those of Azure Database for PostgreSQL's
// Entra ID authentication
// (https://learn.microsoft.com/azure/postgresql/flexible-server/how-to-configure-sign-in-azure-ad-authentication).
var Clouds = map[string]Endpoints{
	"public": {AuthorityHost: "https://login.microsoftonline.com", PowerBIAPI: "https://api.powerbi.com", PowerBIScope: "https://analysis.windows.net/powerbi/api/.default",
		PostgresScope: "https://ossrdbms-aad.database.windows.net/.default"},
	"usgov": {AuthorityHost: "https://login.microsoftonline.com", PowerBIAPI: "https://api.powerbigov.us", PowerBIScope: "https://analysis.usgovcloudapi.net/powerbi/api/.default",
		PostgresScope: "https://ossrdbms-aad.database.usgovcloudapi.net/.default"},
	"usgovhigh": {AuthorityHost: "https://login.microsoftonline.us", PowerBIAPI: "https://api.high.powerbigov.us", PowerBIScope: "https://high.analysis.usgovcloudapi.net/powerbi/api/.default",
		PostgresScope: "https://ossrdbms-aad.database.usgovcloudapi.net/.default"},
	"usdod": {AuthorityHost: "https://login.microsoftonline.us", PowerBIAPI: "https://api.mil.powerbigov.us", PowerBIScope: "https://mil.analysis.usgovcloudapi.net/powerbi/api/.default",
		PostgresScope: "https://ossrdbms-aad.database.usgovcloudapi.net/.default"},
	"china": {AuthorityHost: "https://login.chinacloudapi.cn", PowerBIAPI: "https://api.powerbi.cn", PowerBIScope: "https://analysis.chinacloudapi.cn/powerbi/api/.default",
		PostgresScope: "https://ossrdbms-aad.database.chinacloudapi.cn/.default"},
}

// cloudNames is the list the fix names, in the order an operator reads it.
const cloudNames = "public | usgov | usgovhigh | usdod | china | custom | emulator"

// microsoftHosts are authority hosts MSAL knows; instance discovery stays
// on for them.
var microsoftHosts = map[string]bool{
	"https://login.microsoftonline.com": true, "https://login.microsoftonline.us": true,
	"https://login.chinacloudapi.cn": true, "https://login.partner.microsoftonline.cn": true,
}

// resolveCloud fills the endpoints for the chosen cloud and checks them.
func (v *validator) resolveCloud() {
	c := v.c
	if c.Cloud == "" {
		c.Cloud = "public"
	}
	ep := c.Endpoints
	switch c.Cloud {
	case "custom":
		if ep.AuthorityHost == "" || ep.PowerBIAPI == "" || ep.PowerBIScope == "" {
			v.add("endpoints", "", "set endpoints.authority_host, endpoints.powerbi_api and endpoints.powerbi_scope", "cloud custom needs all three endpoints")
		}
	case "emulator":
		// Filled in by cmd/pbirefresh once the emulator is listening.
		ep.PostgresScope = cmp.Or(ep.PostgresScope, Clouds["public"].PostgresScope)
	default:
		base, ok := Clouds[c.Cloud]
		if !ok {
			v.add("cloud", "", "use one of "+cloudNames, "unknown cloud %s", quote(c.Cloud))
			break
		}
		ep.AuthorityHost = cmp.Or(ep.AuthorityHost, base.AuthorityHost)
		ep.PowerBIAPI = cmp.Or(ep.PowerBIAPI, base.PowerBIAPI)
		ep.PowerBIScope = cmp.Or(ep.PowerBIScope, base.PowerBIScope)
		ep.PostgresScope = cmp.Or(ep.PostgresScope, base.PostgresScope)
	}
	for _, f := range []struct{ key, val string }{{"authority_host", ep.AuthorityHost}, {"powerbi_api", ep.PowerBIAPI}} {
		if f.val != "" && !strings.HasPrefix(f.val, "https://") {
			v.add("endpoints."+f.key, "", "use an https:// URL (the Azure SDKs refuse plain http)", "%s %s is not an https URL", f.key, quote(f.val))
		}
	}
	if ep.PowerBIScope != "" && !strings.HasSuffix(ep.PowerBIScope, "/.default") {
		v.add("endpoints.powerbi_scope", "", "app-only tokens need the resource's /.default scope, e.g. https://analysis.windows.net/powerbi/api/.default", "powerbi_scope %s does not end in /.default", quote(ep.PowerBIScope))
	}
	ep.AuthorityHost = strings.TrimSuffix(ep.AuthorityHost, "/")
	ep.PowerBIAPI = strings.TrimSuffix(ep.PowerBIAPI, "/")
	ep.InstanceDiscovery = microsoftHosts[strings.ToLower(ep.AuthorityHost)]
	if ep.KeyVaultChallengeVerification == nil {
		on := c.Cloud != "emulator"
		ep.KeyVaultChallengeVerification = &on
	}
	c.Endpoints = ep
	if c.Cloud != "emulator" && c.Emulator.Scenario != "" {
		v.add("emulator", "", "remove the emulator section or set cloud: emulator", "emulator settings apply only with cloud: emulator")
	}
	if c.TLS.CAFile != "" {
		if _, err := os.Stat(c.TLS.CAFile); err != nil {
			v.add("tls.ca_file", "", "point tls.ca_file at a PEM file of CA certificates", "cannot read ca_file: %v", err)
		}
	}
}
