Feature: a restart nobody checks
  Scenario: restart nginx
    Given I want to update hosts named web1, web2
    And I want to pre-discover how many hosts to update
    When I restart the service nginx
    Then the service nginx should be running
    When I reload the service nginx
