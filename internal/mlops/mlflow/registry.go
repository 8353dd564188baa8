package mlflow

import (
	"context"
	"net/url"
)

// RegisteredModel is a named model of the registry.
type RegisteredModel struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Tags        []Tag  `json:"tags"`
}

// ModelVersion is one version of a registered model.
type ModelVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// Source is where the model's files are, e.g. under the run's
	// artifact URI.
	Source      string   `json:"source"`
	RunID       string   `json:"run_id"`
	Status      string   `json:"status"` // READY once registered
	Description string   `json:"description"`
	Tags        []Tag    `json:"tags"`
	Aliases     []string `json:"aliases"`
	// CreationTimestamp is in milliseconds.
	CreationTimestamp int64 `json:"creation_timestamp"`
}

// CreateRegisteredModel creates the registered model called name, or
// returns the one there is: its description and tags are then left as
// they are.
func (c *Client) CreateRegisteredModel(ctx context.Context, name, description string, tags []Tag) (RegisteredModel, error) {
	req := struct {
		Name        string `json:"name"`
		Description string `json:"description,omitempty"`
		Tags        []Tag  `json:"tags,omitempty"`
	}{name, description, tags}
	var resp struct {
		RegisteredModel RegisteredModel `json:"registered_model"`
	}
	err := c.post(ctx, "registered-models/create", req, &resp)
	if HasCode(err, CodeResourceAlreadyExists) {
		err = c.get(ctx, "registered-models/get", url.Values{"name": {name}}, &resp)
	}
	return resp.RegisteredModel, err
}

// ModelVersionSpec describes a model version to create.
type ModelVersionSpec struct {
	Name        string // the registered model's
	Source      string
	RunID       string
	Description string
	Tags        []Tag
}

// CreateModelVersion registers a new version of a registered model.
func (c *Client) CreateModelVersion(ctx context.Context, spec ModelVersionSpec) (ModelVersion, error) {
	req := struct {
		Name        string `json:"name"`
		Source      string `json:"source"`
		RunID       string `json:"run_id,omitempty"`
		Description string `json:"description,omitempty"`
		Tags        []Tag  `json:"tags,omitempty"`
	}{spec.Name, spec.Source, spec.RunID, spec.Description, spec.Tags}
	var resp struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	err := c.post(ctx, "model-versions/create", req, &resp)
	return resp.ModelVersion, err
}

// SetRegisteredModelAlias points a registered model's alias (e.g.
// "champion") at one of its versions, moving it from the version it was
// on.
func (c *Client) SetRegisteredModelAlias(ctx context.Context, name, alias, version string) error {
	req := struct {
		Name    string `json:"name"`
		Alias   string `json:"alias"`
		Version string `json:"version"`
	}{name, alias, version}
	return c.post(ctx, "registered-models/alias", req, nil)
}

// GetModelVersion returns a version of a registered model.
func (c *Client) GetModelVersion(ctx context.Context, name, version string) (ModelVersion, error) {
	var resp struct {
		ModelVersion ModelVersion `json:"model_version"`
	}
	err := c.get(ctx, "model-versions/get", url.Values{"name": {name}, "version": {version}}, &resp)
	return resp.ModelVersion, err
}
