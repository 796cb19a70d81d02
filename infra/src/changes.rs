//! Comparing what X-Ray holds with what we want, and making them equal.

use std::fmt;

use aws_sdk_xray::Client;
use aws_sdk_xray::types::{SamplingRule as AwsSamplingRule, SamplingRuleUpdate};
use xray_protocol::SamplingRule;

use crate::InfraError;
use crate::rule_file::{fields, from_aws};

/// What we want in X-Ray.
#[derive(Debug, Clone)]
pub struct Desired {
    pub group_name: String,
    pub filter_expression: String,
    pub rule: SamplingRule,
}

/// What happens (or would happen) to one resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// It is absent: created with these fields (name, value).
    Create(Vec<(&'static str, String)>),
    /// These fields differ.
    Update(Vec<FieldChange>),
    Unchanged,
}

/// One field that differs: what X-Ray has, and what we want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// The changes to the group and to the sampling rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub group_name: String,
    pub rule_name: String,
    pub group: Change,
    pub rule: Change,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.group == Change::Unchanged && self.rule == Change::Unchanged
    }
}

impl fmt::Display for Plan {
    /// `+ create` with the new fields, `~ update` with `field: old -> new`, `= ... is up to date`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, name, change) in
            [("group", &self.group_name, &self.group), ("sampling rule", &self.rule_name, &self.rule)]
        {
            match change {
                Change::Create(fields) => {
                    writeln!(f, "+ create {kind} {name}")?;
                    for (field, value) in fields {
                        writeln!(f, "    {field}: {value}")?;
                    }
                }
                Change::Update(fields) => {
                    writeln!(f, "~ update {kind} {name}")?;
                    for FieldChange { field, from, to } in fields {
                        writeln!(f, "    {field}: {from} -> {to}")?;
                    }
                }
                Change::Unchanged => writeln!(f, "= {kind} {name} is up to date")?,
            }
        }
        Ok(())
    }
}

/// What `destroy` removed (`false`: it was already absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    pub group_name: String,
    pub rule_name: String,
    pub group: bool,
    pub rule: bool,
}

impl fmt::Display for Destroyed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (kind, name, removed) in
            [("group", &self.group_name, self.group), ("sampling rule", &self.rule_name, self.rule)]
        {
            if removed {
                writeln!(f, "- deleted {kind} {name}")?;
            } else {
                writeln!(f, "= {kind} {name} was already absent")?;
            }
        }
        Ok(())
    }
}

/// What X-Ray holds: groups as (name, filter expression), and the sampling rules.
#[derive(Debug, Clone)]
pub struct Listing {
    pub groups: Vec<(String, String)>,
    pub rules: Vec<AwsSamplingRule>,
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "groups:")?;
        if self.groups.is_empty() {
            writeln!(f, "  (none)")?;
        }
        for (name, filter) in &self.groups {
            writeln!(f, "  {name}: {filter}")?;
        }
        writeln!(f, "sampling rules:")?;
        for rule in &self.rules {
            writeln!(
                f,
                "  {} (priority {}, fixed rate {}, reservoir {}/s): service {}, type {}, method {}, host {}, path {}",
                rule.rule_name().unwrap_or("?"),
                rule.priority(),
                rule.fixed_rate(),
                rule.reservoir_size(),
                rule.service_name(),
                rule.service_type(),
                rule.http_method(),
                rule.host(),
                rule.url_path()
            )?;
        }
        Ok(())
    }
}

/// What [`apply`] would do.
pub async fn plan(client: &Client, desired: &Desired) -> Result<Plan, InfraError> {
    let filter = || desired.filter_expression.clone();
    let group = match find_group(client, &desired.group_name).await? {
        None => Change::Create(vec![("FilterExpression", filter())]),
        Some(current) if current == desired.filter_expression => Change::Unchanged,
        Some(current) => Change::Update(vec![FieldChange { field: "FilterExpression", from: current, to: filter() }]),
    };
    let wanted = fields(&desired.rule);
    let rule = match find_rule(client, &desired.rule.rule_name).await? {
        None => Change::Create(wanted),
        Some(current) => {
            let differences: Vec<FieldChange> = fields(&from_aws(&current))
                .into_iter()
                .zip(wanted)
                .filter(|((_, from), (_, to))| from != to)
                .map(|((field, from), (_, to))| FieldChange { field, from, to })
                .collect();
            if differences.is_empty() { Change::Unchanged } else { Change::Update(differences) }
        }
    };
    Ok(Plan { group_name: desired.group_name.clone(), rule_name: desired.rule.rule_name.clone(), group, rule })
}

/// Makes X-Ray hold `desired`, changing only what differs; returns what it did.
pub async fn apply(client: &Client, desired: &Desired) -> Result<Plan, InfraError> {
    let plan = plan(client, desired).await?;
    match &plan.group {
        Change::Create(_) => {
            client
                .create_group()
                .group_name(&desired.group_name)
                .filter_expression(&desired.filter_expression)
                .send()
                .await
                .map_err(InfraError::aws("CreateGroup"))?;
        }
        Change::Update(_) => {
            client
                .update_group()
                .group_name(&desired.group_name)
                .filter_expression(&desired.filter_expression)
                .send()
                .await
                .map_err(InfraError::aws("UpdateGroup"))?;
        }
        Change::Unchanged => {}
    }
    match &plan.rule {
        Change::Create(_) => {
            client
                .create_sampling_rule()
                .sampling_rule(sampling_rule(&desired.rule))
                .send()
                .await
                .map_err(InfraError::aws("CreateSamplingRule"))?;
        }
        Change::Update(_) => {
            client
                .update_sampling_rule()
                .sampling_rule_update(rule_update(&desired.rule))
                .send()
                .await
                .map_err(InfraError::aws("UpdateSamplingRule"))?;
        }
        Change::Unchanged => {}
    }
    Ok(plan)
}

/// Removes the group and the rule; either being absent already is fine.
pub async fn destroy(client: &Client, group_name: &str, rule_name: &str) -> Result<Destroyed, InfraError> {
    let group = find_group(client, group_name).await?.is_some();
    if group {
        client.delete_group().group_name(group_name).send().await.map_err(InfraError::aws("DeleteGroup"))?;
    }
    let rule = find_rule(client, rule_name).await?.is_some();
    if rule {
        client
            .delete_sampling_rule()
            .rule_name(rule_name)
            .send()
            .await
            .map_err(InfraError::aws("DeleteSamplingRule"))?;
    }
    Ok(Destroyed { group_name: group_name.to_owned(), rule_name: rule_name.to_owned(), group, rule })
}

/// Every group and sampling rule X-Ray holds.
pub async fn show(client: &Client) -> Result<Listing, InfraError> {
    Ok(Listing { groups: groups(client).await?, rules: rules(client).await? })
}

/// Every group as (name, filter expression), across all pages.
async fn groups(client: &Client) -> Result<Vec<(String, String)>, InfraError> {
    let groups = client
        .get_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(InfraError::aws("GetGroups"))?;
    Ok(groups
        .into_iter()
        .map(|group| (group.group_name.unwrap_or_default(), group.filter_expression.unwrap_or_default()))
        .collect())
}

/// Every sampling rule, across all pages.
async fn rules(client: &Client) -> Result<Vec<AwsSamplingRule>, InfraError> {
    let records = client
        .get_sampling_rules()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(InfraError::aws("GetSamplingRules"))?;
    Ok(records.into_iter().filter_map(|record| record.sampling_rule).collect())
}

/// The group's filter expression, if the group exists.
async fn find_group(client: &Client, name: &str) -> Result<Option<String>, InfraError> {
    Ok(groups(client).await?.into_iter().find(|(group, _)| group == name).map(|(_, filter)| filter))
}

async fn find_rule(client: &Client, name: &str) -> Result<Option<AwsSamplingRule>, InfraError> {
    Ok(rules(client).await?.into_iter().find(|rule| rule.rule_name() == Some(name)))
}

/// Sets the fields a new rule and a rule update share (the SDK has one builder for each, with the same setters).
macro_rules! with_rule_fields {
    ($builder:expr, $rule:expr) => {
        $builder
            .rule_name(&$rule.rule_name)
            .resource_arn(&$rule.resource_arn)
            .priority($rule.priority)
            .fixed_rate($rule.fixed_rate)
            .reservoir_size($rule.reservoir_size)
            .service_name(&$rule.service_name)
            .service_type(&$rule.service_type)
            .host(&$rule.host)
            .http_method(&$rule.http_method)
            .url_path(&$rule.url_path)
            .set_attributes(Some($rule.attributes.clone().into_iter().collect()))
    };
}

fn sampling_rule(rule: &SamplingRule) -> AwsSamplingRule {
    with_rule_fields!(AwsSamplingRule::builder(), rule)
        .version(rule.version)
        .build()
        .expect("every required field of a sampling rule is set")
}

fn rule_update(rule: &SamplingRule) -> SamplingRuleUpdate {
    with_rule_fields!(SamplingRuleUpdate::builder(), rule).build()
}
