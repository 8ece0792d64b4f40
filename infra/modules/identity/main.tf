# Who may do what: Baton's pods act as a user-assigned identity federated with the chart's
# service account (workload identity); it reads the vault's secrets. AKS's kubelet pulls from
# ACR (AcrPull, instead of the seed's admin user), and the cluster's secrets provider reads
# the vault for the CSI volume.
variable "name" {
  type        = string
  description = "The workload identity's name."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group to create it in."
}

variable "location" {
  type        = string
  description = "Azure region."
}

variable "oidc_issuer_url" {
  type        = string
  description = "The AKS cluster's OIDC issuer."
}

variable "kubernetes_namespace" {
  type        = string
  description = "The namespace Baton's chart is installed in."
}

variable "service_account_name" {
  type        = string
  description = "The chart's service account (<release>-baton by default)."
}

variable "acr_id" {
  type        = string
  description = "The registry AKS pulls from."
}

variable "kubelet_object_id" {
  type        = string
  description = "AKS's kubelet identity."
}

variable "key_vault_id" {
  type        = string
  description = "The vault holding Baton's keys and URLs."
}

variable "secrets_provider_object_id" {
  type        = string
  description = "The principal of AKS's Key Vault secrets provider."
}

variable "tags" {
  type        = map(string)
  description = "Tags on every resource."
}

resource "azurerm_user_assigned_identity" "baton" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_federated_identity_credential" "baton" {
  name                = "${var.name}-${var.kubernetes_namespace}"
  resource_group_name = var.resource_group_name
  parent_id           = azurerm_user_assigned_identity.baton.id
  audience            = ["api://AzureADTokenExchange"]
  issuer              = var.oidc_issuer_url
  subject             = "system:serviceaccount:${var.kubernetes_namespace}:${var.service_account_name}"
}

resource "azurerm_role_assignment" "kubelet_pulls_images" {
  scope                = var.acr_id
  role_definition_name = "AcrPull"
  principal_id         = var.kubelet_object_id
}

resource "azurerm_role_assignment" "baton_reads_secrets" {
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = azurerm_user_assigned_identity.baton.principal_id
}

resource "azurerm_role_assignment" "secrets_provider_reads_secrets" {
  scope                = var.key_vault_id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = var.secrets_provider_object_id
}

output "client_id" {
  description = "For the chart's serviceAccount annotation azure.workload.identity/client-id."
  value       = azurerm_user_assigned_identity.baton.client_id
}
