package refresh

import (
	"context"
	"net/url"
)

// DataflowLink says that a dataset reads a dataflow (Get Dataset To
// Dataflows Links In Group,
// https://learn.microsoft.com/rest/api/power-bi/datasets/get-dataset-to-dataflows-links-in-group).
type DataflowLink struct {
	DatasetID  string
	DataflowID string
	// WorkspaceID is the workspace the service names in the link. The
	// reference does not say whose it is beyond "the workspace object ID";
	// it is taken as the dataflow's, since the dataset's is already the
	// one asked about.
	WorkspaceID string
}

// UpstreamDataflows lists which dataflows the datasets of a workspace read.
func (c *Client) UpstreamDataflows(ctx context.Context, workspaceID string) ([]DataflowLink, error) {
	var out struct {
		Value []struct {
			DatasetObjectID   string `json:"datasetObjectId"`
			DataflowObjectID  string `json:"dataflowObjectId"`
			WorkspaceObjectID string `json:"workspaceObjectId"`
		} `json:"value"`
	}
	if err := c.getJSON(ctx, "/v1.0/myorg/groups/"+url.PathEscape(workspaceID)+"/datasets/upstreamDataflows", &out); err != nil {
		return nil, err
	}
	links := make([]DataflowLink, len(out.Value))
	for i, l := range out.Value {
		links[i] = DataflowLink{DatasetID: l.DatasetObjectID, DataflowID: l.DataflowObjectID, WorkspaceID: l.WorkspaceObjectID}
	}
	return links, nil
}
