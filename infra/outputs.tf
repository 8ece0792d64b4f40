# What the Helm chart's values need (docs/DEPLOY.md shows where each goes).
output "resource_group" {
  value = module.resource_group.name
}

output "aks_cluster_name" {
  description = "az aks get-credentials --resource-group <resource_group> --name <this>"
  value       = module.aks.name
}

output "acr_login_server" {
  description = "image.repository is <this>/baton."
  value       = module.acr.login_server
}

output "key_vault_name" {
  description = "The SecretProviderClass's keyvaultName."
  value       = module.key_vault.name
}

output "tenant_id" {
  description = "The SecretProviderClass's tenantId."
  value       = data.azurerm_client_config.current.tenant_id
}

output "secrets_provider_client_id" {
  description = "The SecretProviderClass's userAssignedIdentityID."
  value       = module.aks.secrets_provider_client_id
}

output "workload_identity_client_id" {
  description = "serviceAccount.annotations.azure.workload.identity/client-id."
  value       = module.identity.client_id
}
